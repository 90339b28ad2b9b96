import httpx
from tests.helpers import serve

from rootserve.demo.app import app


def test_demo_home_and_json() -> None:
    with serve(app) as running, httpx.Client(base_url=running.url) as client:
        home = client.get("/")
        assert home.status_code == 200
        assert "rootserve is serving" in home.text
        info = client.get("/api/info?x=1")
        assert info.json()["query_string"] == "x=1"
        assert info.headers["server"] == "rootserve"
        assert "date" in info.headers
        streamed = client.get("/stream")
        assert streamed.text.endswith("done\n")
        assert streamed.headers["transfer-encoding"] == "chunked"
