"""Chapter 3: a WSGI server on the standard library's socket module, to read, not to deploy.

One connection at a time, one request per connection; chapter 3 lists what it leaves out.
"""

import io
import socket
import sys
import traceback
from email.utils import formatdate
from urllib.parse import unquote


def read_request(rfile):
    """Read the request line, the header fields up to the empty line, then the body."""
    method, target, version = rfile.readline().decode("latin-1").rstrip("\r\n").split(" ")
    fields = {}
    while line := rfile.readline().decode("latin-1").rstrip("\r\n"):  # RFC 9112, section 2.1
        name, _, value = line.partition(":")  # RFC 9112, section 5
        fields[name.lower()] = value.strip(" \t")
    body = rfile.read(int(fields.get("content-length", "0")))  # RFC 9112, section 6.2
    return method, target, version, fields, body


def make_environ(conn, method, target, version, fields, body):
    """The request as the dict PEP 3333 describes in "environ Variables"."""
    path, _, query = target.partition("?")
    host, port = conn.getsockname()[:2]
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote(path, encoding="latin-1"),  # PEP 3333, "Unicode Issues"
        "QUERY_STRING": query,
        "SERVER_NAME": host,
        "SERVER_PORT": str(port),
        "SERVER_PROTOCOL": version,
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in fields.items():
        key = name.upper().replace("-", "_")
        environ[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    return environ


def handle(conn, rfile, app):
    """Answer one request on `conn` by calling the WSGI `app`."""
    environ = make_environ(conn, *read_request(rfile))
    response = {"sent": False}  # start_response adds "status" and "headers"

    def start_response(status, headers, exc_info=None):
        if exc_info and response["sent"]:  # too late to change the status line
            raise exc_info[1].with_traceback(exc_info[2])
        response.update(status=status, headers=headers)
        return write

    def write(data):
        if not response["sent"]:  # the head goes out just before the first body bytes
            head = [f"HTTP/1.1 {response['status']}"]
            head += [f"{name}: {value}" for name, value in response["headers"]]
            head += [f"Date: {formatdate(usegmt=True)}", "Connection: close", "", ""]
            conn.sendall("\r\n".join(head).encode("latin-1"))
            response["sent"] = True
        conn.sendall(data)

    body = app(environ, start_response)
    try:
        for chunk in body:
            if chunk:
                write(chunk)
        write(b"")  # an empty body still needs the head
    finally:
        if hasattr(body, "close"):  # PEP 3333: the server must call close() if there is one
            body.close()


def serve_one(listener, app):
    """Accept one connection, answer one request on it, close it."""
    conn, _ = listener.accept()
    with conn, conn.makefile("rb") as rfile:
        try:
            handle(conn, rfile, app)
        except Exception:  # PEP 3333, "Error Handling": log what the app raised
            traceback.print_exc()


def main(app, port=8000):
    with socket.create_server(("127.0.0.1", port)) as listener:
        print(f"Serving on http://127.0.0.1:{listener.getsockname()[1]}/ (Ctrl-C stops)")
        while True:
            serve_one(listener, app)


if __name__ == "__main__":
    from ch2_app import app

    main(app, int(sys.argv[1]) if len(sys.argv) > 1 else 8000)
