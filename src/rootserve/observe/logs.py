"""rootserve's own log output: one handler on stderr for the `rootserve` loggers, writing
text lines or JSON objects; or, with --log-config, the user's logging configuration instead.

How this works. `setup_logging` gives the `rootserve` logger (parent of `rootserve.error`
and `rootserve.access`) one stderr handler and stops propagation, so an app's own logging
setup neither doubles nor swallows rootserve's lines; `rootserve.trace` (--trace) gets one
of its own that writes each block as it is. With `--log-format json` the handler's
formatter is `JSONFormatter`: one JSON object per record, escaped by construction. An access
line arrives already as one JSON object (observe/access.py builds it, and marks the record
`JSON_LINE`) and is written as it is. With --log-config the file (.json or .toml) goes to
`logging.config.dictConfig` instead: rootserve's loggers then propagate to whatever that
file sets up, and a file that cannot be read or applied is a `ConfigError` of one line.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Final

from rootserve.config import ConfigError

__all__ = [
    "JSON_LINE",
    "JSONFormatter",
    "TextFormatter",
    "clf_time",
    "iso_time",
    "load_log_config",
    "setup_logging",
]

# A record attribute: the record's message is one whole JSON object already (an access line).
JSON_LINE: Final = "rootserve_json_line"

_iso_cache: tuple[int, str] = (-1, "")  # one tuple, swapped whole: threads log too


def iso_time(now: float) -> str:
    """`now` (seconds since the epoch) in ISO 8601, UTC, to the millisecond:
    `2026-12-06T10:11:12.345Z`. The part up to the second is made once per second."""
    global _iso_cache
    second = int(now)
    cached_second, text = _iso_cache
    if cached_second != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _iso_cache = (second, text)
    return f"{text}.{int((now - second) * 1000):03d}Z"


_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
_clf_cache: tuple[int, str] = (-1, "")  # one tuple, swapped whole


def clf_time(now: float) -> str:
    """`now` as the common log format writes it, in local time: `10/Oct/2000:13:55:36 -0700`
    (English month names whatever the locale). Made once per second."""
    global _clf_cache
    second = int(now)
    cached_second, text = _clf_cache
    if cached_second != second:
        t = time.localtime(second)
        offset = t.tm_gmtoff // 60
        hours, minutes = divmod(abs(offset), 60)
        text = (
            f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:"
            f"{t.tm_min:02d}:{t.tm_sec:02d} {'-' if offset < 0 else '+'}{hours:02d}{minutes:02d}"
        )
        _clf_cache = (second, text)
    return text


class JSONFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, pid, message, and the exception's
    traceback as `exception` when there is one. Usable from a --log-config file too
    (`"()": "rootserve.observe.logs.JSONFormatter"`)."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, JSON_LINE, False):
            return record.getMessage()
        fields: dict[str, Any] = {
            "time": iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            fields["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            fields["exception"] = record.exc_text
        if record.stack_info:
            fields["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii: no byte of a message can end the line or pass as another one.
        return json.dumps(fields, default=str)


# The chunks of a formatted traceback that come from the code, not from an exception's
# message: written as they are.
_TRACEBACK_FRAME: Final = ("  File ", "  [Previous line repeated")
_TRACEBACK_BANNERS: Final = frozenset(
    {
        "Traceback (most recent call last):\n",
        "\nThe above exception was the direct cause of the following exception:\n\n",
        "\nDuring handling of the above exception, another exception occurred:\n\n",
    }
)


class TextFormatter(logging.Formatter):
    """Text lines whose tracebacks cannot forge a line: an exception's message (and its
    notes) may quote what a client sent (`ValueError(f"no route for {path}")`), so its
    control characters, line breaks included, are written as escapes; the frames, which
    come from the code, are written as they are."""

    def formatException(self, ei: Any) -> str:
        kind, value, tb = ei
        chunks = traceback.TracebackException(kind, value, tb).format()
        return "".join(_safe_chunk(chunk) for chunk in chunks).rstrip("\n")


def _safe_chunk(chunk: str) -> str:
    if chunk in _TRACEBACK_BANNERS or chunk.startswith(_TRACEBACK_FRAME):
        return chunk
    body = chunk[:-1] if chunk.endswith("\n") else chunk
    if not body.isprintable():
        body = body.encode("unicode_escape").decode("ascii")
    return body + "\n"


def load_log_config(path: str) -> dict[str, Any]:
    """The dictConfig schema in the .json or .toml file `path`; a `ConfigError` naming the
    file and the problem when it cannot be read or is not one."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".json", ".toml"):
        raise ConfigError(f"--log-config {path}: expected a .json or .toml file")
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"--log-config {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
        if suffix == ".json":
            data = json.loads(text)
        else:
            import tomllib  # (only for a TOML file: most starts read none)

            data = tomllib.loads(text)
    except ValueError as exc:  # JSONDecodeError, TOMLDecodeError, UnicodeDecodeError
        kind = "JSON" if suffix == ".json" else "TOML"
        raise ConfigError(f"--log-config {path}: not valid {kind} ({_one_line(exc)})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--log-config {path}: expected a dictConfig object at the top")
    return data


def setup_logging(
    level: str, *, with_pid: bool = False, log_format: str = "text", log_config: str = ""
) -> None:
    """Send rootserve's logs to stderr at `level`: text lines headed by their level (in a
    worker of a supervisor, `with_pid`, also by its pid), or JSON objects (`log_format`
    "json"). With `log_config`, apply that file instead (raises `ConfigError`)."""
    root = logging.getLogger("rootserve")
    root.setLevel(level.upper())
    # --trace blocks are asked for one by one: written whatever the level, as they are
    # (a text block of several lines, or a JSON object), never behind a level prefix.
    trace = logging.getLogger("rootserve.trace")
    trace.setLevel(logging.INFO)
    trace.handlers[:] = []
    trace.propagate = True
    if log_config:
        config = load_log_config(log_config)
        # Loggers made before this call (rootserve's own, an app's module loggers) keep
        # working unless the file says otherwise: dictConfig's default would mute them.
        config.setdefault("disable_existing_loggers", False)
        root.handlers[:] = []
        root.propagate = True  # the file's handlers decide, wherever it puts them
        from logging.config import dictConfig  # (only here: with logging.handlers, 5 ms)

        try:
            dictConfig(config)
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            cause = f": {_one_line(exc.__cause__)}" if exc.__cause__ else ""
            raise ConfigError(f"--log-config {log_config}: {_one_line(exc)}{cause}") from None
        return
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JSONFormatter())
    else:
        head = "%(levelname)s: [%(process)d] " if with_pid else "%(levelname)s: "
        handler.setFormatter(TextFormatter(head + "%(message)s"))
    root.handlers[:] = [handler]
    root.propagate = False
    as_written = logging.StreamHandler(sys.stderr)
    as_written.setFormatter(logging.Formatter("%(message)s"))
    trace.handlers[:] = [as_written]
    trace.propagate = False


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
