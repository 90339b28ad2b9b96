"""A Django project, as `startproject` lays it out, runs unchanged under rootserve.

The project (tests/apps/wsgi/django_project) keeps its sqlite database in a temporary folder
(DJANGO_TEST_DB, read by its settings); the module fixture runs `migrate` there before
serving `get_wsgi_application()` behind wsgiref's validator. Django reads `wsgi.input` with
sized reads only, so nothing sits between the validator and Django.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator

import httpx
import pytest
from tests.apps.wsgi import STATIC
from tests.wsgi.support import (
    KIB,
    WAIT,
    Served,
    WSGIApp,
    assert_validated,
    capture_errors,
    serve_wsgi,
    validated,
)

SETTINGS = "tests.apps.wsgi.django_project.settings"
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture(scope="module")
def django_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WSGIApp]:
    db = tmp_path_factory.mktemp("django") / "db.sqlite3"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_SETTINGS_MODULE", SETTINGS)
        patch.setenv("DJANGO_TEST_DB", str(db))
        from django.core.management import call_command
        from tests.apps.wsgi.django_project.wsgi import application

        call_command("migrate", verbosity=0, interactive=False)
        yield validated(application)


@pytest.fixture(autouse=True)
def errors(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[pytest.LogCaptureFixture]:
    captured = capture_errors(caplog, monkeypatch)
    yield captured
    assert_validated(captured)


@pytest.fixture(scope="module")
def served(django_app: WSGIApp) -> Iterator[Served]:
    with serve_wsgi(django_app, threads=4) as served:
        yield served


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=WAIT) as client:
        yield client


def test_django_view_with_a_unicode_path(client: httpx.Client):
    answer = client.get("/hello/café/")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "greeting": "Hello, café!",
        "path": "/hello/café/",
        "reversed": "/hello/caf%C3%A9/",
        "method": "GET",
    }
    assert client.get("/no/such/page/").status_code == 404


def test_django_form_post_with_csrf(client: httpx.Client):
    page = client.get("/form/")
    assert page.status_code == 200
    assert "csrftoken" in client.cookies
    token = CSRF_INPUT.search(page.text)
    assert token is not None
    saved = client.post(
        "/form/", data={"csrfmiddlewaretoken": token[1], "title": "lamp", "count": "3"}
    )
    assert (saved.status_code, saved.text) == (200, "saved lamp x3")
    invalid = client.post("/form/", data={"csrfmiddlewaretoken": token[1], "title": "lamp"})
    assert invalid.status_code == 400
    assert "This field is required." in invalid.text


def test_django_refuses_a_post_without_the_csrf_token(served: Served):
    with httpx.Client(base_url=served.url, timeout=WAIT) as stranger:
        refused = stranger.post("/form/", data={"title": "lamp", "count": "3"})
    assert refused.status_code == 403


def test_django_reads_the_request_body(client: httpx.Client):
    data = os.urandom(700 * KIB)
    answer = client.post("/echo/", content=data)
    assert answer.json() == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def test_django_file_response(client: httpx.Client):
    """Django hands the file to `wsgi.file_wrapper` with its own close() attached: the server
    calling close() is what ends Django's request (the request_finished signal)."""
    from django.core.signals import request_finished

    finished = threading.Event()

    def on_finished(**kwargs: object) -> None:
        finished.set()

    request_finished.connect(on_finished, weak=False)
    try:
        expected = (STATIC / "hello.txt").read_bytes()
        answer = client.get("/file/")
        assert answer.status_code == 200
        assert answer.content == expected
        assert answer.headers["content-length"] == str(len(expected))
        assert finished.wait(WAIT)
    finally:
        request_finished.disconnect(on_finished)
    head = client.head("/file/")
    assert (head.status_code, head.content) == (200, b"")


def test_django_admin_login_page_renders(client: httpx.Client):
    to_login = client.get("/admin/")
    assert to_login.status_code == 302
    assert to_login.headers["location"] == "/admin/login/?next=/admin/"
    page = client.get("/admin/login/", params={"next": "/admin/"})
    assert page.status_code == 200
    assert "Django administration" in page.text
    assert CSRF_INPUT.search(page.text) is not None
    # A wrong password: the form comes back with Django's error, the database was read.
    token = CSRF_INPUT.search(page.text)
    assert token is not None
    failed = client.post(
        "/admin/login/",
        data={"csrfmiddlewaretoken": token[1], "username": "nobody", "password": "wrong"},
    )
    assert failed.status_code == 200
    assert "Please enter the correct username and password" in failed.text


def test_django_under_a_root_path(django_app: WSGIApp):
    with serve_wsgi(django_app, root_path="/site") as served:
        answer = httpx.get(served.url + "/hello/ann/", timeout=WAIT)
    assert answer.status_code == 200
    assert answer.json()["path"] == "/site/hello/ann/"
    assert answer.json()["reversed"] == "/site/hello/ann/"
