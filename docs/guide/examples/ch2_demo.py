"""Chapter 2: serve ch2_app on a free port, send it five requests, print each exchange."""

from ch2_app import app
from tour import show, wsgiref_server

# (method, target, body): the same requests are sent again in chapter 3.
REQUESTS = [
    ("GET", "/", None),
    ("GET", "/greet?name=Ada%20Lovelace", None),
    ("POST", "/echo", b"ping"),
    ("GET", "/missing", None),
    ("DELETE", "/greet", None),
]


def main():
    with wsgiref_server(app) as port:
        for method, target, body in REQUESTS:
            show(port, method, target, body)


if __name__ == "__main__":
    main()
