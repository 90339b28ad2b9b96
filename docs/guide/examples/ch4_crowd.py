"""Chapter 4: a thousand clients at once, then a thousand idle connections; threads or coroutines?

Each server runs in a child process (this script started again as `ch4_crowd.py serve KIND`),
so that the threads and the memory it reports are its own; the clients run in this process.
Everything listens on 127.0.0.1, and every socket and child process is closed before the end.
"""

import asyncio
import resource
import subprocess
import sys
import threading
import time
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

DELAY = 0.1  # seconds the endpoint waits before answering, as in ch4_measure.py
CLIENTS = 1000  # clients at once in part A, idle connections in part B
BACKLOG = 2048  # the listen() queue; gunicorn's and rootserve's --backlog default
BODY = b"done\n"
KINDS = {"threads": "thread per connection", "asyncio": "asyncio, one thread"}


def rss_kib():
    """The memory this process holds in RAM, in KiB (Linux; elsewhere the peak so far)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * resource.getpagesize() // 1024
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS


# -- the servers, each counting the connections it holds
class Arrivals:
    """Print this process's memory and threads once `expected` connections have arrived."""

    def __init__(self, expected):
        self.expected = expected
        self.count = 0
        self.lock = threading.Lock()

    def arrived(self):
        with self.lock:
            self.count += 1
            if self.count == self.expected:
                print(rss_kib(), threading.active_count(), flush=True)


def slow_wsgi_app(environ, start_response):
    time.sleep(DELAY)  # this connection's thread waits; the others go on
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


class ThreadPerConnection(ThreadingMixIn, WSGIServer):
    """wsgiref's server with a new thread for every connection, however many arrive."""

    request_queue_size = BACKLOG
    daemon_threads = True  # a thread still waiting on an idle client must not keep us alive

    def process_request_thread(self, request, client_address):
        self.arrivals.arrived()
        super().process_request_thread(request, client_address)


def serve_threads(arrivals):
    server = ThreadPerConnection(("127.0.0.1", 0), QuietHandler)
    server.set_app(slow_wsgi_app)
    server.arrivals = arrivals
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    serving.start()
    print(server.server_port, rss_kib(), threading.active_count(), flush=True)
    sys.stdin.read()  # serve until the parent closes our stdin
    server.shutdown()
    serving.join()
    server.server_close()


async def serve_asyncio(arrivals):
    async def handle(reader, writer):
        arrivals.arrived()
        try:
            await reader.readuntil(b"\r\n\r\n")  # an idle client waits here, as a coroutine
            await asyncio.sleep(DELAY)
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(BODY)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + BODY)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed the connection without a request
        finally:
            writer.close()

    # Reading stdin blocks, so a thread of the loop's pool does it; it starts before the
    # threads are counted, and is counted in both reports.
    stdin_closed = asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=BACKLOG)
    port = server.sockets[0].getsockname()[1]
    print(port, rss_kib(), threading.active_count(), flush=True)
    await stdin_closed  # serve until the parent closes our stdin
    server.close()
    await server.wait_closed()


# -- the parent: start a server, send it clients, read what it reports
class Child:
    """A server of `kind` in a child process; its first line gives port, memory and threads."""

    def __init__(self, kind):
        self.process = subprocess.Popen(
            [sys.executable, __file__, "serve", kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.port, self.rss, self.threads = map(int, self.process.stdout.readline().split())

    def report(self):
        """(memory in KiB, threads) once all CLIENTS connections have arrived."""
        rss, threads = map(int, self.process.stdout.readline().split())
        return rss, threads

    def stop(self):
        self.process.stdin.close()
        self.process.wait(timeout=10)
        self.process.stdout.close()


async def one_client(port):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    if not response.endswith(BODY):
        raise RuntimeError(f"unexpected response: {response!r}")


async def all_clients(port):
    started = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one_client(port) for _ in range(CLIENTS))), 30)
    return time.perf_counter() - started


async def idle_connections(child):
    """Open CLIENTS connections that send nothing; return what the child reports."""
    opening = (asyncio.open_connection("127.0.0.1", child.port) for _ in range(CLIENTS))
    streams = await asyncio.gather(*opening)
    try:
        return await asyncio.wait_for(asyncio.to_thread(child.report), 30)
    finally:
        for _, writer in streams:
            writer.close()
        await asyncio.gather(*(writer.wait_closed() for _, writer in streams))


def busy(kind):
    child = Child(kind)
    try:
        return asyncio.run(all_clients(child.port))
    finally:
        child.stop()


def idle(kind):
    child = Child(kind)
    try:
        rss, threads = asyncio.run(idle_connections(child))
    finally:
        child.stop()
    return rss - child.rss, threads - child.threads


def enough_file_descriptors():
    """Both ends of every connection live on this machine: raise the soft limit if needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = CLIENTS + 100  # this process holds one end of each connection, plus its own files
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            raise SystemExit(f"ulimit -n is at most {hard}; lower CLIENTS to {hard - 100}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def main():
    enough_file_descriptors()
    print(f"A. {CLIENTS} clients at once; each request waits {DELAY} s. Until all are answered:")
    for kind, title in KINDS.items():
        seconds = busy(kind)
        delays = int(seconds / DELAY + 0.05)  # whole delays, rounded as in ch4_measure.py
        print(f"   {title:<22} {seconds:5.2f} s ({delays} delays)")
    print(f"B. {CLIENTS} idle connections held open. What the server grew by:")
    for kind, title in KINDS.items():
        grown_kib, threads = idle(kind)
        mib, each = grown_kib / 1024, grown_kib / CLIENTS
        print(f"   {title:<22} {threads:>4} more threads  {mib:5.1f} MiB  {each:4.1f} KiB each")


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        arrivals = Arrivals(CLIENTS)
        if sys.argv[2] == "threads":
            serve_threads(arrivals)
        else:
            asyncio.run(serve_asyncio(arrivals))
    else:
        main()
