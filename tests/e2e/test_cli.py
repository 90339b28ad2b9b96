"""The `rootserve` command as a user runs it: exit codes and their one-line messages,
signals, settings from flags, environment and pyproject.toml, listen addresses, and the
forms APP can take.

Servers are subprocesses started with tests.helpers.start_cli, which waits for the
"Listening on URL" line; commands that exit by themselves run with run_cli.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
from tests.helpers import ROOT, cli_env, run_cli, start_cli

from rootserve import __version__

APPS = ("--app-dir", str(ROOT))  # so that tests.apps.* imports from any working directory


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


# -- exit codes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--port", "notaport"], ["--port", "notaport"]),
        (["--port", "70000"], ["--port", "0-65535"]),
        (["--frobnicate"], ["--frobnicate"]),
        (["--lifespan", "maybe"], ["--lifespan", "maybe"]),
        (["--max-body-size", "lots"], ["--max-body-size", "lots"]),
        (["--bind", "nowhere"], ["nowhere", "HOST:PORT"]),
    ],
    ids=["port-not-a-number", "port-out-of-range", "unknown-flag", "bad-choice", "bad-size",
         "bad-bind"],
)  # fmt: skip
def test_bad_usage_exits_2_with_one_line(args: list[str], words: list[str]):
    done = run_cli(*args)
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    for word in words:
        assert word in line


def test_bad_environment_value_exits_2_naming_the_variable():
    done = run_cli("--port", "0", env=cli_env(ROOTSERVE_TIMEOUT_HEADER="soon"))
    assert done.returncode == 2
    assert "ROOTSERVE_TIMEOUT_HEADER" in one_error_line(done.stderr)


def test_bad_pyproject_exits_2_naming_the_key(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text('[tool.rootserve]\nworkers = "many"\n')
    done = run_cli("--port", "0", cwd=tmp_path)
    assert done.returncode == 2
    assert "workers" in one_error_line(done.stderr)


def test_unimportable_app_exits_3():
    done = run_cli("no_such_module_anywhere:app")
    assert done.returncode == 3
    line = one_error_line(done.stderr)
    assert "cannot import 'no_such_module_anywhere'" in line
    assert "--app-dir" in line


def test_missing_attribute_exits_3():
    done = run_cli("tests.apps.probe:nope", *APPS)
    assert done.returncode == 3
    line = one_error_line(done.stderr)
    assert "has no attribute 'nope'" in line
    assert "make_app" in line  # what the module does have


def test_module_raising_at_import_exits_3_naming_the_exception():
    done = run_cli("tests.apps.raises_at_import:app", *APPS)
    assert done.returncode == 3
    line = one_error_line(done.stderr)
    assert "ZeroDivisionError: the app module broke at import time" in line
    assert "raises_at_import.py, line" in line


def test_non_callable_app_exits_3():
    done = run_cli("tests.apps.odd_apps:not_callable", *APPS)
    assert done.returncode == 3
    assert "not a callable app" in one_error_line(done.stderr)


@pytest.mark.parametrize(
    ("app", "flags", "words"),
    [
        ("refused_startup", [], "the app's startup failed: database unreachable"),
        ("raising_startup", ["--lifespan", "on"], "raised ValueError during lifespan startup"),
    ],
    ids=["startup-failed-message", "raises-with-lifespan-on"],
)
def test_lifespan_startup_failure_exits_3(app: str, flags: list[str], words: str):
    done = run_cli(f"tests.apps.odd_apps:{app}", "--port", "0", *flags, *APPS)
    assert done.returncode == 3
    assert words in done.stderr
    assert "Listening on" not in done.stderr


def test_version():
    done = run_cli("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"rootserve {__version__}"


def test_help_lists_every_group_of_settings():
    done = run_cli("--help")
    assert done.returncode == 0
    for flag in ("--timeout-keep-alive", "--bind", "--lifespan", "--max-body-size", "APP"):
        assert flag in done.stdout


# -- stopping ------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_stops_cleanly(sig: signal.Signals):
    with start_cli("tests.apps.probe:app", "--port", "0", *APPS) as cli:
        assert httpx.get(cli.url + "/scope").json()["app"] == "probe"
        assert cli.stop(sig) == 0
    assert any("Shutting down" in line for line in cli.lines)


# -- where settings come from --------------------------------------------------------------


def test_environment_variables_are_read(tmp_path: Path):
    env = cli_env(ROOTSERVE_PORT="0", ROOTSERVE_ROOT_PATH="/from-env")
    with start_cli(cwd=tmp_path, env=env) as cli:  # no flags at all: the demo app
        assert httpx.URL(cli.url).port not in (None, 8000)  # the default is 8000
        info = httpx.get(cli.url + "/api/info").json()
    assert info["path"] == "/from-env/api/info"


@pytest.mark.parametrize(
    ("env", "flags", "expected"),
    [
        ({}, [], "/from-file"),
        ({"ROOTSERVE_ROOT_PATH": "/from-env"}, [], "/from-env"),
        ({"ROOTSERVE_ROOT_PATH": "/from-env"}, ["--root-path", "/from-cli"], "/from-cli"),
    ],
    ids=["file", "env-beats-file", "cli-beats-env"],
)
def test_pyproject_settings_and_precedence(
    tmp_path: Path, env: dict[str, str], flags: list[str], expected: str
):
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [project]
            name = "someone-elses-project"

            [tool.rootserve]
            app = "tests.apps.probe:app"
            app-dir = {str(ROOT)!r}
            port = 0
            root_path = "/from-file"
            access-log = false
            """
        )
    )
    with start_cli(*flags, cwd=tmp_path, env=cli_env(**env)) as cli:
        scope = httpx.get(cli.url + "/scope").json()
    assert scope["app"] == "probe"  # APP itself came from the file
    assert scope["root_path"] == expected


# -- where it listens ----------------------------------------------------------------------


def test_bind_unix_socket(tmp_path: Path):
    path = tmp_path / "s.sock"
    with start_cli("tests.apps.probe:app", "--bind", f"unix:{path}", *APPS) as cli:
        assert cli.url == f"unix:{path}"
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport, base_url="http://localhost") as client:
            assert client.get("/scope").json()["app"] == "probe"


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")
def test_bind_ipv6():
    with start_cli("tests.apps.probe:app", "--bind", "[::1]:0", *APPS) as cli:
        assert cli.url.startswith("http://[::1]:")
        assert httpx.get(cli.url + "/scope").json()["app"] == "probe"


def test_two_binds_listen_on_both(tmp_path: Path):
    path = tmp_path / "both.sock"
    args = ["--bind", "127.0.0.1:0", "--bind", f"unix:{path}"]
    # The TCP line is logged first; waiting for the unix one means both are there.
    with start_cli("tests.apps.probe:app", *args, *APPS, ready=r"Listening on (unix:\S+)") as cli:
        [tcp] = [line.split()[3] for line in cli.lines if "Listening on http://" in line]
        assert httpx.get(tcp + "/scope").json()["app"] == "probe"
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport, base_url="http://localhost") as client:
            assert client.get("/scope").json()["app"] == "probe"


# -- what APP can be -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["tests.apps.probe:make_app()"], ["--factory", "tests.apps.probe:make_app"]],
    ids=["call-syntax", "factory-flag"],
)
def test_factory(args: list[str]):
    with start_cli(*args, "--port", "0", *APPS) as cli:
        assert httpx.get(cli.url).text == "made by the factory"


def test_app_from_a_file_path(tmp_path: Path):
    folder = tmp_path / "deploy" / "site"
    folder.mkdir(parents=True)
    (folder / "web.py").write_text(
        textwrap.dedent(
            """\
            async def app(scope, receive, send):
                if scope["type"] != "http":
                    return
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"from a file"})
            """
        )
    )
    with start_cli("deploy/site/web.py:app", "--port", "0", cwd=tmp_path) as cli:
        assert httpx.get(cli.url).text == "from a file"


def test_no_app_serves_the_demo(tmp_path: Path):
    with start_cli("--port", "0", cwd=tmp_path) as cli:
        home = httpx.get(cli.url)
    assert home.status_code == 200
    assert "rootserve is serving" in home.text


def test_wsgi_app_detected():
    """A 2-argument callable is detected as WSGI and served through the WSGI adapter.
    (Before the adapter landed this exited 2 with a message saying so; the adapter's own
    behaviour is tested with it.)"""
    with start_cli("tests.apps.odd_apps:wsgi_app", "--port", "0", *APPS) as cli:
        reply = httpx.get(cli.url)
        assert cli.stop() == 0
    assert (reply.status_code, reply.text) == (200, "wsgi")
    assert reply.headers["content-type"] == "text/plain"


def test_interface_asgi_forces_asgi():
    app = "tests.apps.odd_apps:star_args"
    undecided = run_cli(app, "--port", "0", *APPS)
    assert undecided.returncode == 3
    assert "--interface" in one_error_line(undecided.stderr)
    with start_cli(app, "--interface", "asgi", "--lifespan", "off", "--port", "0", *APPS) as cli:
        assert httpx.get(cli.url).text == "hello"


def test_loop_uvloop_without_uvloop_exits_2_with_one_line():
    # As if uvloop were not installed: a None in sys.modules makes its import fail.
    code = "import sys; sys.modules['uvloop'] = None; from rootserve.cli import main; "
    code += "sys.exit(main(['tests.apps.probe:app', '--port', '0', '--loop', 'uvloop', "
    code += f"'--app-dir', {str(ROOT)!r}]))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, env=cli_env()
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --loop uvloop: uvloop is not installed (pip install uvloop)"
    ]
