"""A Flask app written as Flask's docs show, served unchanged by rootserve.

Routes with converters, JSON in and out, a multipart file upload, a streamed body that reads
the request inside `stream_with_context`, `send_file` and `send_from_directory` (which go
through `wsgi.file_wrapper`), `url_for` under a SCRIPT_NAME, `abort` and error handlers.
The CLI serves it as `tests.apps.wsgi.flask_app:app`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from flask import (
    Flask,
    Response,
    abort,
    jsonify,
    request,
    send_file,
    send_from_directory,
    stream_with_context,
    url_for,
)
from tests.apps.wsgi import STATIC
from werkzeug.exceptions import HTTPException

__all__ = ["Teapot", "app"]

app = Flask(__name__)
app.config["FILES_DIR"] = str(STATIC)  # where /files/<name> serves from; a test may change it


class Teapot(Exception):
    pass


@app.get("/")
def index() -> str:
    return "hello from flask"


@app.get("/users/<name>")
def user(name: str) -> Response:
    return jsonify(name=name, q=request.args.get("q"), url=url_for("user", name=name))


@app.post("/items")
def create_item() -> tuple[Response, int]:
    data = request.get_json()
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        abort(422, description="name must be a string")
    return jsonify(created=data["name"], fields=sorted(data)), 201


@app.post("/upload")
def upload() -> Response:
    file = request.files["file"]
    content = file.read()
    return jsonify(
        filename=file.filename,
        content_type=file.mimetype,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        note=request.form.get("note"),
    )


@app.get("/stream")
def stream() -> Response:
    @stream_with_context
    def lines() -> Iterator[str]:
        # `request` is still there while the body streams: stream_with_context keeps the
        # request context open until the server closes the iterable.
        for n in range(int(request.args.get("n", "3"))):
            yield f"line {n} of {request.path}\n"

    return Response(lines(), mimetype="text/plain")


@app.get("/hello.txt")
def hello_file() -> Response:
    return send_file(STATIC / "hello.txt", mimetype="text/plain")


@app.get("/files/<path:name>")
def files(name: str) -> Response:
    return send_from_directory(app.config["FILES_DIR"], name)


@app.get("/teapot")
def teapot() -> str:
    raise Teapot("short and stout")


@app.get("/forbidden")
def forbidden() -> str:
    abort(403)


@app.errorhandler(Teapot)
def on_teapot(exc: Teapot) -> tuple[Response, int]:
    return jsonify(error="teapot", detail=str(exc)), 418


@app.errorhandler(HTTPException)
def on_http_error(exc: HTTPException) -> tuple[Response, int]:
    code = exc.code or 500
    body: dict[str, Any] = {"error": exc.name, "status": code}
    if code == 422:
        body["detail"] = exc.description
    return jsonify(body), code
