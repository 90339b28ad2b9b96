"""Chapter 4, exercise 1: clients that connect and send nothing hold a threaded server's workers.

A server with 2 worker threads; 2 clients connect and stay silent; a third, ordinary client
asks for a page. Without a read timeout it is not answered; with one it is, once the silent
connections have been dropped. Everything runs on 127.0.0.1 and stops by itself.
"""

import http.client
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

THREADS = 2
CLIENT_PATIENCE = 1.0  # seconds the ordinary client waits before it gives up


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
    return [b"hi\n"]


class Handler(WSGIRequestHandler):
    timeout = None  # seconds a worker waits for the client to send; None waits forever

    def log_message(self, format, *args):
        pass


class PooledWSGIServer(WSGIServer):
    request_queue_size = 16

    def __init__(self, handler):
        super().__init__(("127.0.0.1", 0), handler)
        self.pool = ThreadPoolExecutor(THREADS)
        self.set_app(app)

    def process_request(self, request, client_address):
        self.pool.submit(self.work, request, client_address)

    def work(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except OSError:
            pass  # a timed-out or vanished client; a real server would log it
        finally:
            self.shutdown_request(request)


def try_ordinary_request(read_timeout):
    handler = type("Handler", (Handler,), {"timeout": read_timeout})
    server = PooledWSGIServer(handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    port = server.server_port
    try:
        with ExitStack() as silent_clients:
            for _ in range(THREADS):  # connect, send nothing, keep the connection open
                silent = silent_clients.enter_context(socket.create_connection(("127.0.0.1", port)))
                silent.settimeout(5)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CLIENT_PATIENCE)
            started = time.perf_counter()
            try:
                connection.request("GET", "/")
                connection.getresponse().read()
                waited = time.perf_counter() - started
                return f"answered after {waited:.2f} s"
            except TimeoutError:
                return f"no answer within {CLIENT_PATIENCE} s"
            finally:
                connection.close()
        # Leaving the with block closes the silent connections, which frees the workers.
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
        server.pool.shutdown()


def main():
    print(f"{THREADS} workers, {THREADS} silent clients, then one ordinary request:")
    print("  no read timeout: ", try_ordinary_request(None))
    print("  0.3 s timeout:   ", try_ordinary_request(0.3))


if __name__ == "__main__":
    main()
