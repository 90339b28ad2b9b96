"""Chapter 2: send the same requests to the hand-written app and to the Flask app."""

import ch2_app
import ch2_flask
from tour import fetch, wsgiref_server

REQUESTS = [
    ("GET", "/greet?name=Ada%20Lovelace", None),
    ("POST", "/echo", b"ping"),
    ("GET", "/missing", None),
    ("DELETE", "/greet", None),
    ("HEAD", "/greet", None),
    ("OPTIONS", "/greet", None),
]


def summary(response):
    """One line: status, Content-Type, Allow (sorted) and the start of the body."""
    _, status, reason, fields, body = response
    fields = {name.lower(): value for name, value in fields}
    content_type = fields.get("content-type", "(none)").split(";")[0]
    parts = [f"{status} {reason}", content_type]
    if "allow" in fields:
        allowed = sorted(method.strip() for method in fields["allow"].split(","))
        parts.append("Allow: " + ", ".join(allowed))
    text = body.decode("utf-8", "replace")
    parts.append(repr(text if len(text) <= 28 else text[:25] + "..."))
    return " | ".join(parts)


def main():
    with wsgiref_server(ch2_app.app) as by_hand, wsgiref_server(ch2_flask.app) as flask:
        for method, target, body in REQUESTS:
            print(f"{method} {target}")
            print("  by hand:", summary(fetch(by_hand, method, target, body)))
            print("  Flask:  ", summary(fetch(flask, method, target, body)))


if __name__ == "__main__":
    main()
