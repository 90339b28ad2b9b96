"""Chapter 5: a broken ASGI app, served with `rootserve --strict`, which names its mistake.

The mistake is a common one: header names and values given as str, where ASGI wants bytes.
Run as a script, this file serves its own `app` with --strict, sends one request and prints
the answer and the server's log.
"""

from ch5_run import running, show


async def app(scope, receive, send):
    if scope["type"] != "http":
        return  # no lifespan, no WebSocket: the server goes on without them
    await receive()
    headers = [("content-type", "text/plain")]  # wrong: names and values must be bytes
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"Hello!\n"})


COMMAND = ["rootserve", "ch5_strict:app", "--app-dir", "docs/guide/examples", "--port", "0"]


def main():
    print(f"$ {' '.join(COMMAND)} --strict")
    with running(*COMMAND, "--strict") as (port, log):
        show(port, "GET", "/")
        log.wait_for(r'"GET / HTTP/1.1" 500')  # the access log line comes after the answer
    print("--- its log, after Ctrl-C:")
    print("\n".join(log.lines[:-1]))


if __name__ == "__main__":
    main()
