"""Chapter 4, exercise 2: move a blocking call off the event loop with run_in_executor.

The blocking endpoint of ch4_measure.py, fixed: time.sleep stands for a library that has no
async version. It now runs in a pool of 4 threads, so 16 slow requests take about 4 delays
(like the WSGI server), while the loop stays free: a fast request sent at the same moment
is answered at once.
"""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

DELAY = 0.1
SLOW_CLIENTS = 16
pool = ThreadPoolExecutor(4)


def blocking_call():
    time.sleep(DELAY)
    return b"slow\n"


async def handle(reader, writer):
    request_line = await reader.readline()
    await reader.readuntil(b"\r\n\r\n")  # the rest of the head; these requests have no body
    if request_line.startswith(b"GET /slow "):
        body = await asyncio.get_running_loop().run_in_executor(pool, blocking_call)
    else:
        body = b"fast\n"
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
    writer.write(body)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def timed_get(port, path):
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    assert response.startswith(b"HTTP/1.1 200 OK"), response
    return time.perf_counter() - started


async def measure():
    # Server and clients share one loop here: only the loop's own responsiveness is measured.
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        slow = [timed_get(port, "/slow") for _ in range(SLOW_CLIENTS)]
        *slow_times, fast_time = await asyncio.wait_for(
            asyncio.gather(*slow, timed_get(port, "/fast")), timeout=30
        )
    longest = max(slow_times)
    print(f"{SLOW_CLIENTS} slow requests: all answered after {longest:.2f} s", end="")
    print(f" ({int(longest / DELAY + 0.05)} delays)")
    print(f"1 fast request sent with them: answered after {fast_time:.2f} s")


def main():
    try:
        asyncio.run(measure())
    finally:
        pool.shutdown()


if __name__ == "__main__":
    main()
