"""Chapter 2, exercise 1: GET /add?a=2&b=3 answers 5; a missing or bad number gets 400."""

from urllib.parse import parse_qs
from wsgiref.util import setup_testing_defaults


def plain(start_response, status, text):
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def app(environ, start_response):
    if environ["PATH_INFO"] != "/add":
        return plain(start_response, "404 Not Found", "Try /add?a=2&b=3\n")
    query = parse_qs(environ.get("QUERY_STRING", ""))
    try:
        a = float(query["a"][0])
        b = float(query["b"][0])
    except (KeyError, ValueError):
        # RFC 9110, section 15.5.1: 400 is for a request the client got wrong.
        return plain(start_response, "400 Bad Request", "Give two numbers: /add?a=2&b=3\n")
    return plain(start_response, "200 OK", f"{a + b:g}\n")


def call(app, path, query):
    environ = {"PATH_INFO": path, "QUERY_STRING": query}
    setup_testing_defaults(environ)
    sent = {}

    def start_response(status, headers, exc_info=None):
        sent["status"] = status
        return lambda data: None

    body = app(environ, start_response)
    try:
        data = b"".join(body)
    finally:
        if hasattr(body, "close"):
            body.close()
    return sent["status"], data


def main():
    for query in ("a=2&b=3", "a=0.5&b=-2", "a=2", "a=two&b=3"):
        status, data = call(app, "/add", query)
        print(f"GET /add?{query} -> {status}: {data.decode()}", end="")


if __name__ == "__main__":
    main()
