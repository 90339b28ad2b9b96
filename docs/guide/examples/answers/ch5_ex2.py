"""Chapter 5, exercise 2: a WebSocket app that refuses connections without the right token.

Refusing is sending websocket.close in reply to websocket.connect, before any accept; the
server then answers the handshake with 403 (ASGI spec, WebSocket "Connect"). The script
tries it with rootserve's test client, which runs rootserve's own HTTP and WebSocket code.
"""

from urllib.parse import parse_qs

from rootserve.testing import Client, WebSocketRejected

TOKEN = "let-me-in"


async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return  # this app has no HTTP pages and nothing to do at startup
    await receive()  # websocket.connect
    query = parse_qs(scope["query_string"].decode("latin-1"))
    if query.get("token") != [TOKEN]:
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "websocket.accept"})
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": f"echo: {message.get('text')}"})


def main():
    with Client(app) as client:
        for path in ["/ws", "/ws?token=guess", f"/ws?token={TOKEN}"]:
            try:
                with client.websocket_connect(path) as session:
                    session.send_text("hi")
                    print(f"{path}: accepted, 'hi' came back as {session.receive_text()!r}")
            except WebSocketRejected as refused:
                print(f"{path}: refused with HTTP status {refused.status}")


if __name__ == "__main__":
    main()
