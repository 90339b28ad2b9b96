"""Chapter 4: one slow endpoint, three servers, N clients at once; how long until all are done?

Every server runs on 127.0.0.1 in a thread of this process and is stopped before the script
ends. The endpoint waits DELAY seconds before it answers, the way a handler waits for a slow
database, an upstream API or a long poll.
"""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

DELAY = 0.1  # seconds the endpoint waits before answering
THREADS = 4  # worker threads of the WSGI server
CLIENTS = (1, 4, 16)  # how many clients ask at the same moment, one row each
BODY = b"done\n"


# -- the WSGI side: a fixed pool of worker threads, like gunicorn --threads 4
def slow_wsgi_app(environ, start_response):
    time.sleep(DELAY)  # the worker thread can do nothing else meanwhile
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


class PooledWSGIServer(WSGIServer):
    """wsgiref's server, but each accepted connection is handed to one of THREADS workers."""

    request_queue_size = 64  # the listen() backlog; wsgiref's default of 5 would drop clients

    def __init__(self, address, handler, threads):
        super().__init__(address, handler)
        self.pool = ThreadPoolExecutor(threads)

    def process_request(self, request, client_address):
        self.pool.submit(self.work, request, client_address)

    def work(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self):
        super().server_close()
        self.pool.shutdown()


@contextmanager
def wsgi_server():
    server = PooledWSGIServer(("127.0.0.1", 0), QuietHandler, THREADS)
    server.set_app(slow_wsgi_app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


# -- the asyncio side: one thread, one event loop, a coroutine per connection
async def slow_endpoint():
    await asyncio.sleep(DELAY)  # the loop serves other connections meanwhile
    return BODY


async def blocking_endpoint():
    time.sleep(DELAY)  # a blocking call inside a coroutine: the whole loop stops
    return BODY


@contextmanager
def asyncio_server(endpoint):
    loop = asyncio.new_event_loop()

    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")  # the request head; these requests have no body
        body = await endpoint()
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        writer.write(head.encode() + body)
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


# -- the clients: N connections opened at once, each sends one GET and reads the answer
async def one_client(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    await writer.drain()
    response = await reader.read()  # until the server closes the connection
    writer.close()
    await writer.wait_closed()
    if not response.endswith(BODY):
        raise RuntimeError(f"unexpected response: {response!r}")


async def all_clients(port, clients):
    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one_client(port) for _ in range(clients))), 30)
    return time.perf_counter() - started


def measure(server, clients):
    """Seconds until `clients` simultaneous requests to `server` have all been answered."""
    with server as port:
        return asyncio.run(all_clients(port, clients))


def cell(seconds):
    # Every request waits at least DELAY, so a run of k delays takes k * DELAY or a bit more.
    delays = int(seconds / DELAY + 0.05)
    return f"{seconds:.2f} s ({delays} delay{'s' if delays > 1 else ''})"


def main():
    columns = (
        (f"WSGI, {THREADS} threads", lambda: wsgi_server()),
        ("asyncio, awaits", lambda: asyncio_server(slow_endpoint)),
        ("asyncio, blocks", lambda: asyncio_server(blocking_endpoint)),
    )
    print(f"One delay is {DELAY} s. Time until every client has its answer:")
    print(f"{'clients':>7}" + "".join(f"  {title:>18}" for title, _ in columns))
    for clients in CLIENTS:
        row = [cell(measure(make_server(), clients)) for _, make_server in columns]
        print(f"{clients:>7}" + "".join(f"  {text:>18}" for text in row))


if __name__ == "__main__":
    main()
