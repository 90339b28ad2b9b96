"""Chapter 5: serve the same ASGI app with uvicorn and with rootserve, and talk to each.

Each server runs as a child process on a free port of 127.0.0.1; the script sends both the
same two HTTP requests and one WebSocket session, stops the server, and prints its log.
"""

from ch5_run import running, show
from websockets.sync.client import connect

SERVERS = [
    ["uvicorn", "ch5_app:app", "--app-dir", "docs/guide/examples", "--port", "0"],
    ["rootserve", "ch5_app:app", "--app-dir", "docs/guide/examples", "--port", "0"],
]


def main():
    for command in SERVERS:
        print(f"$ {' '.join(command)}")
        with running(*command) as (port, log):
            show(port, "GET", "/")
            show(port, "GET", "/")
            with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=10) as session:
                session.send("hi")
                print(f"websocket /ws: sent 'hi', got {session.recv(timeout=10)!r}")
        print("--- its log, after Ctrl-C:")
        print("\n".join(log.lines[:-1]))
        print()


if __name__ == "__main__":
    main()
