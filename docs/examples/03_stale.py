"""A server that closes idle connections without a word, and the stale probe.

Many servers close a keep-alive connection after a short idle time and say
nothing about it in advance (no ``Keep-Alive`` header). The server here is
such a one, written with plain sockets: it answers one request at a time
and closes a connection that has been idle for 0.3 s.

The client waits 0.5 s between two requests. By then the server has closed
the connection, so the pooled socket has an end-of-file waiting on it. The
client's zero-timeout probe sees that before sending anything, discards the
connection (``StaleConnectionDiscarded``) and opens a new one: the request
succeeds and nothing is retried, because nothing was sent on the dead socket.

A second client with ``idle_timeout=0.2``, below the server's 0.3 s, shows
the better set-up: the client retires the connection itself
(``ConnectionExpired``, reason ``idle_timeout``) before the server closes it.

Run it with ``python docs/examples/03_stale.py``; it takes about a second.
"""

from __future__ import annotations

import socket
import threading
import time

import rawkeep

SERVER_IDLE_CLOSE = 0.3  # seconds an idle connection is kept by the server


def read_request(conn: socket.socket, buffer: bytearray) -> bytes | None:
    """Read one request (head and Content-Length body) from ``conn``.

    Returns the request line, or None when the peer closed. Raises
    ``TimeoutError`` when no request starts within the socket's timeout.
    """
    while b"\r\n\r\n" not in buffer:
        data = conn.recv(65536)
        if not data:
            return None
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            return None
        rest += data
    buffer[:] = rest[length:]  # keep any pipelined bytes (rawkeep sends none)
    return head.split(b"\r\n", 1)[0]


def handle(conn: socket.socket) -> None:
    """Answer requests on one connection until it has been idle too long."""
    buffer = bytearray()
    conn.settimeout(SERVER_IDLE_CLOSE)
    with conn:
        while True:
            try:
                request_line = read_request(conn, buffer)
            except TimeoutError:
                print(f"    [server] idle for {SERVER_IDLE_CLOSE} s: closing, silently")
                return
            if request_line is None:
                return
            body = b"answered " + request_line.split()[1] + b"\n"
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
            conn.sendall(head + body)


def serve(listener: socket.socket, stop: threading.Event) -> None:
    """Accept connections one after another until ``stop`` is set."""
    listener.settimeout(0.05)  # so that ``stop`` is noticed promptly
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        handle(conn)


def show(event: rawkeep.Event) -> None:
    detail = ""
    if isinstance(event, rawkeep.ConnectionExpired | rawkeep.ConnectionClosed):
        detail = f" reason={event.reason}"
    print(f"      event: {type(event).__name__} #{event.connection_id}{detail}")


def get(client: rawkeep.Client, url: str) -> None:
    response = client.get(url)
    print(
        f"    GET -> {response.status} {response.text.strip()!r},"
        f" connection #{response.connection_id}, reused={response.reused}"
    )


def main() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(listener, stop), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    print(f"server on {url} closes connections idle for {SERVER_IDLE_CLOSE} s\n")
    try:
        print("1. default client (idle_timeout=30): the probe catches the close")
        with rawkeep.Client(on_event=show) as client:
            get(client, url + "/first")
            print("    (client idle for 0.5 s)")
            time.sleep(0.5)
            get(client, url + "/second")
            stats = client.pool_stats()
            print(
                f"    pool_stats(): opened={stats.opened} reused={stats.reused}"
                f" closed={stats.closed} idle={stats.idle}"
            )
            print("    closing the client")

        print("\n2. idle_timeout=0.2: the client retires the connection first")
        with rawkeep.Client(idle_timeout=0.2, on_event=show) as client:
            get(client, url + "/first")
            print("    (client idle for 0.25 s)")
            time.sleep(0.25)
            get(client, url + "/second")
            print("    closing the client")
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


if __name__ == "__main__":
    main()
