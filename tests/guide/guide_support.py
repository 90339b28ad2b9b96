"""Helpers for the guide's tests: run example scripts, normalise their output, call apps.

How outputs are compared: a page shows an output file, and a test runs the example and
compares what it printed with that file. Parts that change from run to run are masked on
both sides before the comparison (see `normalise`):

- a port after 127.0.0.1: becomes PORT (servers in the examples bind port 0);
- a number with exactly two decimals (0.41, a time in seconds or milliseconds) becomes N.NN;
- a date in wsgiref's log format ([25/Nov/2025 10:00:00]) becomes [DATE].

Output files hold the masked form, except where a reader's own run prints a fixed value (a
server started by hand listens on port 8000) or where a page discusses the numbers
themselves (chapter 4 shows one recorded run); masking both sides makes them compare equal.
"""

import io
import os
import re
import subprocess
import sys
from pathlib import Path
from wsgiref.validate import validator

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "guide"
EXAMPLES = GUIDE / "examples"
ANSWERS = EXAMPLES / "answers"
OUTPUT = EXAMPLES / "output"

MASKS = [
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:PORT"),
    (re.compile(r"(?<![\d.])\d+\.\d\d(?![\d.])"), "N.NN"),
    (re.compile(r"\[\d\d/\w{3}/\d{4} \d\d:\d\d:\d\d\]"), "[DATE]"),
]


def normalise(text):
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


def run_python(script, *args, timeout=30):
    """Run `script` the way a reader would; return the finished process (stdout, stderr)."""
    env = {**os.environ, "PYTHONIOENCODING": "utf-8", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-W", "error", str(script), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )


def run_example(relative_path, *args, timeout=30):
    """Run an example script; fail on a non-zero exit or anything on stderr; return stdout."""
    finished = run_python(EXAMPLES / relative_path, *args, timeout=timeout)
    assert finished.returncode == 0, finished.stderr
    assert finished.stderr == ""
    return finished.stdout


def make_environ(method="GET", target="/", body=b"", content_type=None):
    """A complete environ for one request, as a server following PEP 3333 would build it."""
    path, _, query = target.partition("?")
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    if content_type:
        environ["CONTENT_TYPE"] = content_type
    return environ


def call_validated(app, method="GET", target="/", body=b"", content_type=None):
    """Call a WSGI app through wsgiref.validate.validator; return (status, headers, body).

    The validator raises AssertionError when either side breaks PEP 3333, and warns with
    WSGIWarning for lesser faults, which the test settings turn into errors.
    """
    sent = {}

    def start_response(status, headers, exc_info=None):
        sent.update(status=status, headers=headers)
        return lambda data: None

    result = validator(app)(make_environ(method, target, body, content_type), start_response)
    try:
        data = b"".join(result)
    finally:
        result.close()
    return sent["status"], dict(sent["headers"]), data
