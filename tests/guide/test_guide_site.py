"""The docs site: the generated settings page, the chapters' shape, and a strict build."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest
from guide_support import GUIDE, REPO

CHAPTERS = [
    "01-what-wsgi-is.md",
    "02-a-wsgi-app-from-scratch.md",
    "03-the-wsgi-server-and-middleware.md",
    "04-why-asgi-exists.md",
    "05-an-asgi-app-and-the-servers.md",
    "06-from-protocol-to-framework.md",
]


def load_hook():
    spec = importlib.util.spec_from_file_location(
        "rootserve_docs_settings_hook", REPO / "docs" / "_hooks" / "settings.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def setting_info():
    if str(REPO / "src") not in sys.path:  # the hook does the same when rootserve is absent
        sys.path.append(str(REPO / "src"))
    from rootserve.config import setting_info

    return setting_info()


def test_the_settings_page_lists_every_setting():
    page = load_hook().settings_page(REPO)
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    infos = setting_info()
    assert len(rows) == len(infos)
    for info, row in zip(infos, rows, strict=True):
        assert f"`{info.env}`" in row
        assert (info.metavar if info.positional else info.flag) in row


def test_no_stale_copy_of_the_generated_page_is_stored():
    assert not (REPO / "docs" / "reference" / "settings.md").exists()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_each_chapter_opens_with_its_level_and_goals_and_ends_with_exercises(chapter):
    text = (GUIDE / chapter).read_text(encoding="utf-8")
    opening = text.split("\n## ", 1)[0]
    assert re.search(r"\*\*Difficulty:\*\* (🟢 easy|🟡 medium|🔴 harder)\.", opening)
    assert "After this chapter you can:" in opening
    last = text.rsplit("\n## ", 1)[1]
    assert last.startswith("Exercises\n")
    exercises = re.findall(r"^\d\. ", last, re.MULTILINE)
    assert 2 <= len(exercises) <= 3
    number = chapter[1]
    assert f"(answers/ch{number}.md)" in last
    assert (GUIDE / "answers" / f"ch{number}.md").is_file()


@pytest.mark.slow
def test_the_site_builds_strictly_and_shows_every_setting(tmp_path):
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # a banner of the theme, not a warning
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert not re.search(r"^(WARNING|ERROR)", built.stderr, re.MULTILINE), built.stderr
    settings = (tmp_path / "reference" / "settings" / "index.html").read_text(encoding="utf-8")
    for info in setting_info():
        assert info.env in settings
    for chapter in CHAPTERS:
        assert (tmp_path / "guide" / chapter.removesuffix(".md") / "index.html").is_file()
    # Example code is included into pages, not published as loose files; nor are the hook
    # and the ruff settings that live in docs/.
    assert not (tmp_path / "guide" / "examples").exists()
    assert not (tmp_path / "_hooks").exists()
    assert not (tmp_path / "ruff.toml").exists()
