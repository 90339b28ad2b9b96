"""Chapter 3: middleware is a callable that takes a WSGI app and returns another one."""

import time


def timing(app):
    """Add a Server-Timing field: how long `app` took to call start_response."""

    def timed_app(environ, start_response):
        started = time.perf_counter()

        def timed_start_response(status, headers, exc_info=None):
            elapsed_ms = (time.perf_counter() - started) * 1000
            headers = [*headers, ("Server-Timing", f"app;dur={elapsed_ms:.2f}")]
            return start_response(status, headers, exc_info)

        return app(environ, timed_start_response)

    return timed_app


def mount(app, prefix):
    """Serve `app` under the path `prefix`; answer 404 for every other path."""

    def mounted_app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path != prefix and not path.startswith(prefix + "/"):
            body = f"Not found: everything here is under {prefix}/\n".encode()
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [body]
        # PEP 3333, "environ Variables": SCRIPT_NAME is where the app is mounted, PATH_INFO
        # the rest. A copy, so the caller's environ is left as it was.
        environ = dict(environ)
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
        environ["PATH_INFO"] = path[len(prefix) :]
        return app(environ, start_response)

    return mounted_app


def where(environ, start_response):
    """A small app that answers with the SCRIPT_NAME and PATH_INFO it was given."""
    text = f"SCRIPT_NAME={environ['SCRIPT_NAME']!r} PATH_INFO={environ['PATH_INFO']!r}\n"
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [text.encode()]
