"""The examples that serve an app run standalone, as the pages tell the reader to run them."""

import http.client
import queue
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from guide_support import EXAMPLES, OUTPUT, REPO, normalise

SERVING = ["ch1_smallest.py", "ch2_hello.py", "ch2_app.py", "ch2_flask.py", "ch3_server.py"]


class Running:
    """A script started as `python script 0`, its output lines collected by two threads."""

    def __init__(self, script):
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-W", "error", str(EXAMPLES / script), "0"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout = queue.Queue()
        self.stderr = queue.Queue()
        self.readers = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self.stdout)),
            threading.Thread(target=self._pump, args=(self.process.stderr, self.stderr)),
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _pump(stream, lines):
        for line in stream:
            lines.put(line)
        stream.close()

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)
        for reader in self.readers:
            reader.join(timeout=10)


@pytest.fixture
def start():
    started = []

    def run(script):
        started.append(Running(script))
        return started[-1]

    yield run
    for running in started:
        running.stop()


def port_of(banner):
    match = re.fullmatch(r"Serving on http://127\.0\.0\.1:(\d+)/ \(Ctrl-C stops\)\n", banner)
    assert match, banner
    return int(match[1])


def get(port, target):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("script", SERVING)
def test_serves_until_stopped(script, start):
    running = start(script)
    port = port_of(running.stdout.get(timeout=10))  # the banner says the socket is listening
    status, body = get(port, "/")
    assert status == 200
    assert body


def test_ch2_hello_session_is_what_the_page_shows(start):
    """The page shows the server's terminal and what curl prints in a second terminal."""
    running = start("ch2_hello.py")
    banner = running.stdout.get(timeout=10)
    status, body = get(port_of(banner), "/hello?name=Ada")
    assert status == 200
    log_line = running.stderr.get(timeout=10)  # wsgiref logs each request on stderr
    terminal = (OUTPUT / "ch2_hello_server.txt").read_text(encoding="utf-8")
    assert normalise(banner + log_line) == normalise(terminal)
    curl = (OUTPUT / "ch2_hello_curl.txt").read_text(encoding="utf-8")
    assert body.decode() == curl


# gunicorn's log lines hold a date, process ids and its version; masked like the other outputs.
GUNICORN_MASKS = [
    (re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\]"), "[DATE]"),
    (re.compile(r"\[\d+\]"), "[PID]"),
    (re.compile(r"\(\d+\)"), "(PID)"),
    (re.compile(r"pid: \d+"), "pid: PID"),
    (re.compile(r"gunicorn \d+(\.\d+)+"), "gunicorn VERSION"),
]


def gunicorn_masked(text):
    for pattern, replacement in GUNICORN_MASKS:
        text = pattern.sub(replacement, text)
    return normalise(text)


def test_gunicorn_serves_the_chapter_2_app_as_the_page_shows(tmp_path):
    gunicorn = Path(sys.executable).with_name("gunicorn")
    # Port 0 and a control socket of its own, so that the test shares nothing.
    own = ["-b", "127.0.0.1:0", "--control-socket", str(tmp_path / "g.ctl")]
    process = subprocess.Popen(
        [str(gunicorn), *own, "ch2_app:app"],
        cwd=EXAMPLES,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = []
        while not lines or "Booting worker" not in lines[-1]:  # the worker is ready to serve
            line = process.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
        port = int(re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", "".join(lines))[1])
        status, body = get(port, "/greet?name=Ada")
    finally:
        process.terminate()  # SIGTERM: gunicorn's graceful stop; only the process we started
        process.wait(timeout=30)
        process.stderr.close()
    assert status == 200
    assert body.decode() == (OUTPUT / "ch3_gunicorn_curl.txt").read_text(encoding="utf-8")
    shown = (OUTPUT / "ch3_gunicorn.txt").read_text(encoding="utf-8")
    assert gunicorn_masked("".join(lines)) == gunicorn_masked(shown)
