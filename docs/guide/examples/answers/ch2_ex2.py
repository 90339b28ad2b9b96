"""Chapter 2, exercise 2: POST /sum takes a JSON list of numbers and answers with their sum."""

import io
import json
from wsgiref.util import setup_testing_defaults


def send_json(start_response, status, value):
    body = json.dumps(value).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    start_response(status, headers)
    return [body]


def app(environ, start_response):
    if environ["PATH_INFO"] != "/sum" or environ["REQUEST_METHOD"] != "POST":
        return send_json(start_response, "404 Not Found", {"error": "POST a list to /sum"})
    # CONTENT_TYPE may carry parameters ("application/json; charset=utf-8").
    media_type = environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        # RFC 9110, section 15.5.16: 415 means "not in a format I accept".
        return send_json(start_response, "415 Unsupported Media Type", {"error": "send JSON"})
    length = int(environ.get("CONTENT_LENGTH") or "0")
    try:
        numbers = json.loads(environ["wsgi.input"].read(length))
        if not isinstance(numbers, list) or not all(
            isinstance(n, int | float) and not isinstance(n, bool) for n in numbers
        ):
            raise ValueError("not a list of numbers")
    except ValueError:  # json.JSONDecodeError is a ValueError too
        return send_json(start_response, "400 Bad Request", {"error": "a list of numbers"})
    return send_json(start_response, "200 OK", {"sum": sum(numbers)})


def post(app, path, content_type, body):
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    setup_testing_defaults(environ)
    sent = {}

    def start_response(status, headers, exc_info=None):
        sent["status"] = status
        return lambda data: None

    result = app(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return sent["status"], data


def main():
    for content_type, body in [
        ("application/json", b"[1, 2, 3.5]"),
        ("text/plain", b"[1, 2, 3.5]"),
        ("application/json", b"[1, 2,"),
        ("application/json", b'{"a": 1}'),
    ]:
        status, data = post(app, "/sum", content_type, body)
        print(f"{content_type:<16} {body.decode():<11} -> {status}: {data.decode()}")


if __name__ == "__main__":
    main()
