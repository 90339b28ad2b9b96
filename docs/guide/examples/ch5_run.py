"""Helpers for chapter 5's demos: run a server command, wait until it listens, talk to it.

`running(command)` starts the server as a child process, reads its log as it comes (on a
thread), and waits for the line that says which port it listens on; the servers are given
port 0, so the operating system picks a free one. On the way out it stops the process it
started, by its process id, as Ctrl-C would, and waits for it to exit.
"""

import http.client
import re
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager

WAIT = 20  # seconds, at most, for a server to start or stop
LISTENING = re.compile(r"(?:running|Listening) on http://127\.0\.0\.1:(\d+)")
HIDDEN_FIELDS = {"date"}  # changes on every run


class Log:
    """A process's output lines, collected by a thread, that can be waited on."""

    def __init__(self, stream):
        self.lines = []
        self.changed = threading.Condition()
        self.reader = threading.Thread(target=self._read, args=(stream,))
        self.reader.start()

    def _read(self, stream):
        for line in stream:
            with self.changed:
                self.lines.append(line.rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.lines.append(None)  # the end of the output
            self.changed.notify_all()

    def wait_for(self, pattern):
        """The first match of `pattern` in a line, waiting up to WAIT seconds for it."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern

        def found():
            return next((m for line in self.lines if line and (m := regex.search(line))), None)

        with self.changed:
            if not self.changed.wait_for(lambda: found() or None in self.lines, WAIT):
                raise TimeoutError(f"no line matching {regex.pattern}")
            if not found():
                raise RuntimeError("the server exited:\n" + "\n".join(self.lines[:-1]))
            return found()


@contextmanager
def running(*command):
    """Run `python -m <command>`; yield (port, log) once it listens; stop it on the way out."""
    process = subprocess.Popen(
        [sys.executable, "-m", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        encoding="utf-8",
    )
    log = Log(process.stdout)
    try:
        port = int(log.wait_for(LISTENING)[1])
        yield port, log
    finally:
        process.send_signal(signal.SIGINT)  # to this process id only: Ctrl-C in its terminal
        try:
            process.wait(WAIT)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.reader.join(WAIT)
            process.stdout.close()


def show(port, method, target, body=None, headers=None):
    """Send one request and print the exchange, curl -v style (without the Date field)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    print(f"> {method} {target}")
    for name, value in (headers or {}).items():
        print(f"> {name}: {value}")
    if body is not None:
        print(f"> (body) {body.decode()}")
    print(f"< HTTP/1.1 {response.status} {response.reason}")
    for name, value in response.getheaders():
        if name.lower() not in HIDDEN_FIELDS:
            print(f"< {name}: {value}")
    text = data.decode("utf-8", "replace")
    print(text if text.endswith("\n") or not text else text + "\n", end="")
