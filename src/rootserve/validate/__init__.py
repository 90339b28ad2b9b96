"""Contract validators (`--strict`, or as middleware): `asgi(app)` and `wsgi(app)` return
the app wrapped so that every rule of its contract it breaks raises a ContractError that
names the rule and where the spec or PEP writes it.

    from rootserve import validate
    app = validate.asgi(app)      # or validate.wsgi(app)

The two validators are imported when first asked for: the server imports ContractError
(to answer a broken rule with a page that names it) without loading them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rootserve.validate._errors import ContractError

if TYPE_CHECKING:
    from rootserve.validate._asgi import asgi
    from rootserve.validate._wsgi import wsgi

__all__ = ["ContractError", "asgi", "wsgi"]


def __getattr__(name: str) -> Any:
    if name == "asgi":
        from rootserve.validate._asgi import asgi

        return asgi
    if name == "wsgi":
        from rootserve.validate._wsgi import wsgi

        return wsgi
    raise AttributeError(f"module 'rootserve.validate' has no attribute {name!r}")
