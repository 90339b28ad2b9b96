"""wsgi.file_wrapper goes out with loop.sendfile where the transport allows it (asyncio's own
loop); with uvloop, whose transports have no sendfile, the app thread reads the file."""

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from tests.wsgi.support import serve_wsgi


class _NoReads:
    """A file the server may only send with sendfile: reading it fails the request."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("rb")
        self.closed = False

    def fileno(self) -> int:
        return self._file.fileno()

    def tell(self) -> int:
        return self._file.tell()

    def read(self, size: int = -1) -> bytes:
        raise AssertionError("read() called: sendfile was not used")

    def close(self) -> None:
        self.closed = True
        self._file.close()


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    return path


def test_file_wrapper_is_sent_with_sendfile_on_the_asyncio_loop(big_file: Path) -> None:
    opened: list[_NoReads] = []

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        opened.append(_NoReads(big_file))
        return environ["wsgi.file_wrapper"](opened[-1])

    with serve_wsgi(app, loop="asyncio") as running, httpx.Client(base_url=running.url) as client:
        first = client.get("/")
        second = client.get("/")  # the same keep-alive connection goes on after it
    expected = hashlib.sha256(big_file.read_bytes()).hexdigest()
    for response in (first, second):
        assert response.status_code == 200
        assert response.headers["content-length"] == str(big_file.stat().st_size)
        assert hashlib.sha256(response.content).hexdigest() == expected
    assert all(f.closed for f in opened)  # close() after the body went out (PEP 3333)


def test_file_wrapper_is_read_on_the_app_thread_with_uvloop(big_file: Path) -> None:
    def app(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](big_file.open("rb"))

    with serve_wsgi(app, loop="uvloop") as running, httpx.Client(base_url=running.url) as client:
        response = client.get("/")
    assert response.content == big_file.read_bytes()
