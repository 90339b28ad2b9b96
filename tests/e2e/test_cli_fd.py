"""`--bind fd://N`: serve on a listening socket the process inherited (socket activation)."""

import socket
import subprocess
import sys

import httpx
from tests.helpers import run_cli, start_cli


def test_bind_fd_serves_on_an_inherited_socket() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    try:
        with start_cli(f"--bind=fd://{fd}", "--no-access-log", pass_fds=(fd,)) as server:
            assert server.url == f"http://127.0.0.1:{port}"
            response = httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=10)
            assert response.status_code == 200
            assert response.json()["path"] == "/api/info"
    finally:
        listener.close()


def test_bind_fd_that_is_not_a_socket_is_a_usage_error() -> None:
    result = run_cli("--bind", "fd://0", stdin=subprocess.DEVNULL)  # /dev/null: no socket
    assert result.returncode == 2
    assert "fd://0" in result.stderr


def test_systemd_socket_activation_serves_on_the_passed_socket_with_workers() -> None:
    # As systemd does it: the socket at descriptor 3, LISTEN_FDS=1 and LISTEN_PID the pid
    # of the process that execs rootserve (sd_listen_fds(3)); the supervisor hands it on.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    port = listener.getsockname()[1]
    fd = listener.fileno()
    exec_as_systemd = (
        f"import os, sys; os.dup2({fd}, 3); "
        "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1', LISTEN_FDNAMES='http'); "
        "os.execv(sys.executable, [sys.executable, '-m', 'rootserve', *sys.argv[1:]])"
    )
    command = (sys.executable, "-c", exec_as_systemd)
    try:
        with start_cli("-w", "2", "--no-access-log", pass_fds=(fd,), command=command) as server:
            assert server.url == f"http://127.0.0.1:{port}"
            for _ in range(5):
                response = httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=10)
                assert response.status_code == 200
            assert server.stop() == 0
    finally:
        listener.close()
