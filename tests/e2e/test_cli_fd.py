"""`--bind fd://N`: serve on a listening socket the process inherited (socket activation)."""

import socket
import subprocess

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
