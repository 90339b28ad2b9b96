"""`--reload`: a change to the app's code reaches the next request; code that does not import
keeps the old worker serving until the next change fixes it. Real files in a temporary
folder, watched by watchfiles; every wait is on a log line or a bounded poll."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tests.e2e.workers_support import WAIT, raw_get, supervisor
from tests.helpers import run_cli

pytestmark = pytest.mark.slow

APP_SOURCE = """
VERSION = {version!r}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": VERSION.encode()}})
"""


def write_app(folder: Path, version: str) -> None:
    (folder / "edited.py").write_text(APP_SOURCE.format(version=version))


def get_body(port: int) -> bytes:
    return raw_get(port).partition(b"\r\n\r\n")[2]


def wait_for_body(port: int, expected: bytes) -> None:
    """Poll (bounded) until the server answers `expected`: a reload is asynchronous."""
    deadline = time.monotonic() + WAIT
    while (body := get_body(port)) != expected:
        assert time.monotonic() < deadline, f"still {body!r}, not {expected!r}"
        time.sleep(0.05)  # noqa: sleep-ok (poll: the new worker is starting)


def test_an_edit_is_served_a_broken_edit_keeps_the_old_code_and_a_fix_resumes(tmp_path: Path):
    write_app(tmp_path, "one")
    with supervisor("edited:app", "--app-dir", str(tmp_path), "--reload") as running:
        running.worker_pids(1)
        running.wait_for(r"Reloading on changes in")
        port = running.port
        assert get_body(port) == b"one"
        # No bytecode cache of the edited code: "two" is the size of "one", and an edit
        # within the second would find the cache taken for the source.
        assert not (tmp_path / "__pycache__").exists()
        write_app(tmp_path, "two")
        running.wait_for(r"Changed: .*edited\.py")
        wait_for_body(port, b"two")
        (tmp_path / "edited.py").write_text("def app(:\n")  # a syntax error
        running.wait_for(r"Reload failed: .*the old code goes on serving")
        running.wait_for(r"SyntaxError|invalid syntax|could not import", 1)
        assert get_body(port) == b"two"
        write_app(tmp_path, "three")
        wait_for_body(port, b"three")
        assert running.stop() == 0


def test_code_broken_at_start_waits_for_a_fix(tmp_path: Path):
    (tmp_path / "edited.py").write_text("import not_a_module_anywhere\n")
    with supervisor("edited:app", "--app-dir", str(tmp_path), "--reload") as running:
        running.wait_for(r"waiting for a change to the code")
        assert running.proc.poll() is None  # not an exit: a developer is editing
        write_app(tmp_path, "fixed")
        running.worker_pids(1)
        wait_for_body(running.port, b"fixed")
        assert running.stop() == 0


def test_files_that_do_not_match_are_ignored(tmp_path: Path):
    write_app(tmp_path, "one")
    with supervisor("edited:app", "--app-dir", str(tmp_path), "--reload") as running:
        running.worker_pids(1)
        running.wait_for(r"Reloading on changes in")
        (tmp_path / "notes.txt").write_text("not code")
        (tmp_path / ".venv").mkdir()
        (tmp_path / ".venv" / "lib.py").write_text("x = 1")
        (tmp_path / "marker.py").write_text("x = 1")  # then one that matches
        changed = running.wait_for(r"Changed: (.*)")[0][1]
        assert changed.endswith("marker.py")  # the batch held only the matching file
        assert running.stop() == 0


def test_a_missing_reload_dir_is_a_usage_error(tmp_path: Path):
    done = run_cli("--reload", "--reload-dir", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: --reload-dir {tmp_path / 'nowhere'}: not a folder"
    ]
