"""The two pages about deploying: deploying.md shows every deployment file as it is stored
(included, never copied), and coming-from.md's flag table is made from the settings'
`elsewhere` by the docs hook, a column per server."""

from __future__ import annotations

import importlib.util
import re
from types import ModuleType, SimpleNamespace

import pytest
from tests.deploy.tools import ROOT

from rootserve.config import setting_info

DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "rootserve_docs_settings_hook", DOCS / "_hooks" / "settings.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render(hook: ModuleType) -> str:
    """coming-from.md as the hook hands it to MkDocs."""
    page = SimpleNamespace(file=SimpleNamespace(src_uri=hook.COMING_FROM))
    config = SimpleNamespace(config_file_path=str(ROOT / "mkdocs.yml"))
    markdown = (DOCS / "coming-from.md").read_text(encoding="utf-8")
    text: str = hook.on_page_markdown(markdown, page=page, config=config, files=None)
    return text


def test_deploying_includes_every_deployment_file() -> None:
    page = (DOCS / "deploying.md").read_text(encoding="utf-8")
    included = set(re.findall(r'^--8<-- "(deploy/[^"]+)"$', page, re.MULTILINE))
    stored = {f"deploy/{path.name}" for path in (ROOT / "deploy").iterdir()}
    assert included == stored


def test_elsewhere_is_split_into_a_column_per_server(hook: ModuleType) -> None:
    split = hook.split_elsewhere
    assert split("uvicorn `--a`, gunicorn `-b`") == {"uvicorn": "`--a`", "gunicorn": "`-b`"}
    assert split("uvicorn and gunicorn `--c`") == {"uvicorn": "`--c`", "gunicorn": "`--c`"}
    # A comma inside a note is not a new server.
    assert split("uvicorn `--d` (a, b), granian `--e`") == {
        "uvicorn": "`--d` (a, b)",
        "elsewhere": "granian `--e`",
    }
    assert split("whitenoise, nginx `location`") == {"elsewhere": "whitenoise, nginx `location`"}


def test_the_flag_table_has_a_row_per_setting_with_equivalents(hook: ModuleType) -> None:
    page = render(hook)
    assert hook.FLAG_TABLE not in page
    table = page.split("| uvicorn | gunicorn | rootserve | elsewhere |\n", 1)[1]
    table = table.split("\n\n", 1)[0]
    rows = [[cell.strip() for cell in line[1:-1].split(" | ")] for line in table.splitlines()]
    by_flag = {re.findall(r"`(--[\w-]+)", row[2])[0]: row for row in rows[1:]}
    named = [info for info in setting_info() if info.elsewhere]
    assert named  # the table is not empty
    for info in named:
        cells = by_flag.pop(info.flag)
        for column, server in enumerate(hook.SERVERS):
            flags = re.findall(rf"{server}(?: and \w+)? (`[^`]+`)", info.elsewhere)
            assert all(flag in cells[column] for flag in flags), (info.name, server, cells)
    assert not by_flag  # no row for a setting that names no equivalent


def test_the_hook_refuses_a_page_without_its_marker(hook: ModuleType) -> None:
    page = SimpleNamespace(file=SimpleNamespace(src_uri=hook.COMING_FROM))
    config = SimpleNamespace(config_file_path=str(ROOT / "mkdocs.yml"))
    with pytest.raises(RuntimeError, match="must hold the line"):
        hook.on_page_markdown("# no table", page=page, config=config, files=None)
