"""Which changed files --reload acts on (supervisor/reload.py), without a watcher."""

from __future__ import annotations

from pathlib import Path

import pytest

from rootserve.config import Config
from rootserve.supervisor.reload import ReloadFilter, reload_roots


@pytest.mark.parametrize(
    ("relative", "watched"),
    [
        ("app.py", True),
        ("pkg/views.py", True),
        ("pkg/templates/page.html", False),  # not included by default
        (".venv/lib/python3.11/site-packages/mod.py", False),
        ("venv/lib/mod.py", False),
        ("pkg/__pycache__/views.cpython-311.pyc", False),
        ("pkg/__pycache__/views.py", False),  # a folder part excluded excludes what is in it
        (".git/hooks/pre-commit.py", False),
        ("pkg/.views.py.swp", False),  # vim's swap file
        ("pkg/views.py~", False),
        ("node_modules/x/y.py", False),
        ("", False),  # the folder itself
    ],
)
def test_default_patterns(tmp_path: Path, relative: str, watched: bool):
    keep = ReloadFilter([tmp_path], include=[], exclude=[])
    assert keep.matches(tmp_path / relative) is watched


def test_include_and_exclude_add_to_the_defaults(tmp_path: Path):
    keep = ReloadFilter([tmp_path], include=["*.html"], exclude=["generated"])
    assert keep.matches(tmp_path / "templates/page.html")
    assert keep.matches(tmp_path / "app.py")
    assert not keep.matches(tmp_path / "generated/models.py")
    assert not keep.matches(tmp_path / ".venv/page.html")


def test_a_project_under_a_hidden_folder_is_still_watched(tmp_path: Path):
    root = tmp_path / ".work" / "project"
    keep = ReloadFilter([root], include=[], exclude=[])
    assert keep.matches(root / "app.py")  # `.*` applies below the watched folder only
    assert not keep.matches(root / ".venv" / "x.py")
    assert not keep.matches(tmp_path / "elsewhere.py")  # outside every watched folder


def test_the_watcher_takes_changes_as_watchfiles_gives_them(tmp_path: Path):
    keep = ReloadFilter([tmp_path], include=[], exclude=[])
    assert keep(object(), str(tmp_path / "app.py"))  # watchfiles calls (change, path)


def test_roots_default_to_the_app_dir_and_a_missing_one_is_named(tmp_path: Path):
    assert reload_roots(Config(app_dir=str(tmp_path))) == [tmp_path.resolve()]
    given = Config(reload_dir=[str(tmp_path), str(tmp_path / "missing")])
    with pytest.raises(ValueError, match="missing: not a folder"):
        reload_roots(given)
