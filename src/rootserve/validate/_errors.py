"""The one error every contract check raises: which contract, the rule, where it is written."""

from __future__ import annotations

__all__ = ["ContractError"]


class ContractError(Exception):
    """An app broke a rule of its contract. The message names the contract and the
    conversation (`ASGI http`, `ASGI websocket`, `ASGI lifespan`, `WSGI`), what happened,
    and the rule's section, e.g. `ASGI http: 'http.response.body' sent before
    'http.response.start' (ASGI HTTP spec, "Response Start")`."""

    def __init__(self, contract: str, what: str, section: str) -> None:
        super().__init__(f"{contract}: {what} ({section})")
        self.contract = contract
        self.what = what
        self.section = section
