"""Chapter 5: serve ch5_app with `rootserve --trace`, send one request, print the trace.

The request carries an X-Request-ID, which the trace shows as the request's id. The script
prints two of the blocks the server wrote: the first part of the lifespan's, written when
the app waits for the shutdown message, and the request's.
"""

from ch5_run import running, show

COMMAND = ["rootserve", "ch5_app:app", "--app-dir", "docs/guide/examples", "--port", "0"]


def main():
    print(f"$ {' '.join(COMMAND)} --trace --no-access-log")
    with running(*COMMAND, "--trace", "--no-access-log") as (port, log):
        show(port, "POST", "/echo", b"ping", {"X-Request-ID": "ch5-echo"})
        log.wait_for(r"app returned")  # the request's block is written when the call ends
    for block in blocks(log.lines[:-1]):
        if block[0] in {"── asgi lifespan", "── asgi http · POST /echo · id ch5-echo"}:
            print("\n".join(block))


def blocks(lines):
    """The trace blocks among the log lines: a "── " line and the indented lines under it."""
    found = []
    for line in lines:
        if line.startswith("── "):
            found.append([line])
        elif line.startswith(" ") and found:
            found[-1].append(line)
    return found


if __name__ == "__main__":
    main()
