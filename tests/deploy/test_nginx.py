"""deploy/nginx.conf: nginx itself accepts it (`nginx -t`), and its numbers agree with
rootserve's defaults, so nginx neither refuses what rootserve would take nor keeps what
rootserve has dropped. nginx is not started here (the end-to-end test does that)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from tests.deploy.nginx_support import NGINX_CONF, nginx_command, nginx_config
from tests.deploy.tools import require

from rootserve.config import default

pytestmark = pytest.mark.timeout(660)  # only a missing nginx takes long: its install

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}  # nginx's sizes are binary
_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


@pytest.fixture(scope="module")
def nginx() -> str:
    return require("nginx", apt="nginx-light")


def check(nginx: str, conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*nginx_command(nginx, conf), "-t"], capture_output=True, text=True, timeout=30
    )


def directive(name: str, *, within: str = "") -> str:
    """The value of the one `name` directive of deploy/nginx.conf (inside the block that
    opens with `within`, when given)."""
    text = NGINX_CONF.read_text(encoding="utf-8")
    if within:
        text = text.split(within, 1)[1].split("}", 1)[0]
    values = re.findall(rf"^\s*{re.escape(name)}\s+([^;]+);", text, re.MULTILINE)
    assert len(values) == 1, f"{name}: expected once, found {values}"
    return str(values[0])


def size(text: str) -> int:
    match = re.fullmatch(r"(\d+)([kmg]?)", text.lower())
    assert match, text
    return int(match[1]) * _UNITS[match[2]]


def seconds(text: str) -> float:
    match = re.fullmatch(r"(\d+)([smh]?)", text)
    assert match, text
    return int(match[1]) * _SECONDS[match[2]]


def proxy_headers() -> dict[str, str]:
    text = NGINX_CONF.read_text(encoding="utf-8")
    pairs = re.findall(r"^\s*proxy_set_header\s+(\S+)\s+([^;]+);", text, re.MULTILINE)
    return {name.lower(): value for name, value in pairs}


def test_nginx_accepts_the_file(nginx: str, tmp_path: Path) -> None:
    done = check(nginx, nginx_config(tmp_path, listen_port=8080))
    assert done.returncode == 0, done.stderr
    assert "test is successful" in done.stderr
    assert "[warn]" not in done.stderr and "[emerg]" not in done.stderr, done.stderr


def test_nginx_t_refuses_a_broken_copy(nginx: str, tmp_path: Path) -> None:
    # The check above means something only if nginx -t bites: a misspelt directive.
    broken = NGINX_CONF.read_text(encoding="utf-8").replace(
        "proxy_http_version 1.1;", "proxy_http_versoin 1.1;"
    )
    done = check(nginx, nginx_config(tmp_path, listen_port=8080, source=broken))
    assert done.returncode != 0
    assert "proxy_http_versoin" in done.stderr


def test_a_body_rootserve_takes_passes_nginx() -> None:
    assert size(directive("client_max_body_size")) == default("max_body_size")


def test_client_timeouts_match_rootserves() -> None:
    assert seconds(directive("client_header_timeout")) == default("timeout_header")
    assert seconds(directive("client_body_timeout")) == default("timeout_body")


def test_nginx_drops_an_idle_upstream_connection_before_rootserve_does() -> None:
    upstream = "upstream rootserve {"
    assert int(directive("keepalive", within=upstream)) > 0
    idle = seconds(directive("keepalive_timeout", within=upstream))
    assert idle < default("timeout_keep_alive")


def test_an_open_websocket_is_never_silent_for_proxy_read_timeout() -> None:
    assert seconds(directive("proxy_read_timeout")) > default("ws_ping_interval")


def test_http_1_1_upstream_with_upgrade_for_websockets_only() -> None:
    assert directive("proxy_http_version") == "1.1"
    headers = proxy_headers()
    assert headers["upgrade"] == "$http_upgrade"
    assert headers["connection"] == "$connection_upgrade"
    text = NGINX_CONF.read_text(encoding="utf-8")
    mapping = re.search(r"map \$http_upgrade \$connection_upgrade \{(.*?)\}", text, re.DOTALL)
    assert mapping is not None
    # No Upgrade from the client: no Connection header, so the connection is kept alive.
    assert re.search(r'^\s*""\s+"";', mapping[1], re.MULTILINE)


def test_the_proxy_headers_come_from_nginx_never_from_the_client() -> None:
    headers = proxy_headers()
    assert headers["x-forwarded-for"] in {"$remote_addr", "$proxy_add_x_forwarded_for"}
    assert headers["x-forwarded-proto"] == "$scheme"
    assert headers["x-forwarded-host"] == "$host"
    assert headers["x-forwarded-port"] == "$server_port"
    # rootserve reads these too: an empty value is how nginx removes a client's copy.
    assert headers["forwarded"] == '""'
    assert headers["x-forwarded-prefix"] == '""'
    assert not any("$http_" in value for value in headers.values() if value != "$http_upgrade")
