"""Chapter 1, exercise 2: three contract breaks, found one at a time by wsgiref.validate."""

import warnings
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import WSGIWarning, validator


# --8<-- [start:broken]
def broken_app(environ, start_response):
    start_response("200", [("Content-Type", "text/plain"), ("Content-Length", 6)])
    return "Hello\n"
    # --8<-- [end:broken]


def status_fixed(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", 6)])
    return "Hello\n"


def header_fixed(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
    return "Hello\n"


def body_fixed(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "6")])
    return [b"Hello\n"]


def start_response(status, headers, exc_info=None):
    return lambda data: None


def main():
    warnings.simplefilter("error", WSGIWarning)  # the status check only warns; make it fail
    for app in (broken_app, status_fixed, header_fixed, body_fixed):
        environ = {"QUERY_STRING": ""}  # setup_testing_defaults leaves QUERY_STRING out
        setup_testing_defaults(environ)
        try:
            body = validator(app)(environ, start_response)
            body.close()
            print(f"{app.__name__}: passes")
        except (AssertionError, WSGIWarning) as error:
            print(f"{app.__name__}: {type(error).__name__}: {error}")


if __name__ == "__main__":
    main()
