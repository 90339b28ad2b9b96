"""deploy/nginx.conf made runnable by anyone, anywhere: a copy whose paths are in one
folder and whose port and upstream are the test's own.

The copy changes only what ties the file to a machine (the pid, log and temporary-file
paths, the `user`, the listening port, the upstream's address); everything else is the
deployed file as it is. Each change must match exactly once, so a reshaped nginx.conf
fails here loudly instead of being tested half-rewritten. For `nginx -t` here and for a
test that starts nginx (`nginx_command(...) + ["-g", "daemon off;"]`).
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.deploy.tools import ROOT

__all__ = ["NGINX_CONF", "nginx_command", "nginx_config"]

NGINX_CONF = ROOT / "deploy" / "nginx.conf"
# The temporary files nginx keeps (request bodies, buffered responses): their compiled-in
# folders are root's (/var/lib/nginx on Debian), and nginx makes them when it starts.
_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def _once(text: str, pattern: str, replacement: str) -> str:
    new, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert count == 1, f"deploy/nginx.conf: expected one line like {pattern!r}, found {count}"
    return new


def nginx_config(
    folder: Path, *, listen_port: int, upstream: str = "127.0.0.1:8000", source: str = ""
) -> Path:
    """Write the runnable copy of deploy/nginx.conf (or of `source`) into `folder`."""
    text = source or NGINX_CONF.read_text(encoding="utf-8")
    text = _once(text, r"^user \S+;\n", "")  # the master runs as whoever starts it
    text = _once(text, r"^pid \S+;", f"pid {folder}/nginx.pid;")
    text = _once(text, r"^error_log \S+", f"error_log {folder}/error.log")
    text = _once(text, r"^(\s*)access_log \S+;", rf"\1access_log {folder}/access.log;")
    text = _once(text, r"^(\s*)listen 80;", rf"\1listen 127.0.0.1:{listen_port};")
    text = _once(text, r"^\s*listen \[::\]:80;\n", "")  # IPv6 may be off in a container
    text = _once(text, r"^(\s*)server 127\.0\.0\.1:8000;", rf"\1server {upstream};")
    temp = "".join(f"    {kind}_temp_path {folder}/{kind};\n" for kind in _TEMP_PATHS)
    text = _once(text, r"^http \{\n", "http {\n" + temp)
    conf = folder / "nginx.conf"
    conf.write_text(text, encoding="utf-8")
    return conf


def nginx_command(nginx: str, conf: Path) -> list[str]:
    """nginx on `conf`, with its prefix and its first error log (written before the
    configuration is read) in the copy's folder rather than under /var."""
    folder = conf.parent
    return [nginx, "-p", f"{folder}/", "-e", str(folder / "error.log"), "-c", str(conf)]
