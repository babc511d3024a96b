"""The keep-alive race, and the retry rule that recovers from it.

The race: the server closes an idle connection at the very moment the
client sends a new request on it. The client's probe found the connection
healthy (the close had not arrived yet), the request goes out, and the only
answer is the connection closing. No response byte arrived, so the server
did not act on the request, but the client cannot be sure in general.

The server here plays that part on purpose, with plain sockets: on each
connection it answers the first request, then reads the next one and closes
the connection without answering. That is what the client sees in the race.

1. A GET on the reused connection fails before any response byte: GET is
   idempotent, so the client sends it again (``RequestRetried``) and the
   caller gets the response.
2. A POST in the same situation is not retried: it raises
   ``RemoteProtocolError`` saying why.
3. With ``retries=0`` even a GET is not retried.

Run it with ``python docs/examples/04_race.py``; it takes well under a second.
"""

from __future__ import annotations

import socket
import threading

import rawkeep


def read_request(conn: socket.socket) -> bool:
    """Read one request head and its Content-Length body; False on EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        body += chunk
    return True


def serve(listener: socket.socket, stop: threading.Event) -> None:
    """Per connection: answer one request, then drop the connection on the
    next request without answering it."""
    listener.settimeout(0.05)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        with conn:
            conn.settimeout(5)
            if not read_request(conn):
                continue
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            if read_request(conn):
                print("    [server] got a request on a used connection: closing")


def show(event: rawkeep.Event) -> None:
    detail = ""
    if isinstance(event, rawkeep.ConnectionExpired | rawkeep.ConnectionClosed):
        detail = f" reason={event.reason}"
    elif isinstance(event, rawkeep.RequestRetried):
        detail = f" {event.method} attempt={event.attempt} error={event.error!r}"
    print(f"      event: {type(event).__name__} #{event.connection_id}{detail}")


def send(client: rawkeep.Client, method: str, url: str) -> None:
    try:
        response = client.request(method, url, content=b"x" if method == "POST" else None)
    except rawkeep.RemoteProtocolError as exc:
        print(f"    {method} -> RemoteProtocolError: {exc}")
        return
    print(
        f"    {method} -> {response.status},"
        f" connection #{response.connection_id}, reused={response.reused}"
    )


def main() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(listener, stop), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    print(f"server on {url} drops each connection's second request\n")
    try:
        print("1. GET hits the race and is retried on a new connection")
        with rawkeep.Client(on_event=show) as client:
            send(client, "GET", url)
            send(client, "GET", url)
            print("\n2. POST hits the race and is not retried")
            send(client, "POST", url)
            print("    closing the client")

        print("\n3. retries=0: GET is not retried either")
        with rawkeep.Client(retries=0, on_event=show) as client:
            send(client, "GET", url)
            send(client, "GET", url)
            stats = client.pool_stats()
            print(
                f"    pool_stats(): opened={stats.opened} closed={stats.closed}"
                f" idle={stats.idle} active={stats.active}"
            )
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


if __name__ == "__main__":
    main()
