"""Connections retired before they go bad: the keep-alive expiry rules.

The server here announces its own limits on every response, the way Apache
does: ``Keep-Alive: timeout=2, max=N``, where ``timeout=2`` says it closes a
connection after 2 s of idleness, and ``max`` counts down the requests it
will still accept on this connection (3, then 2, 1, 0; after ``max=0`` it
closes the connection). The client reads those numbers and stops reusing a
connection *before* the server would close it.

Four short acts, each printing the events as they happen:

1. ``max``: after the response that says ``max=0`` the connection is retired
   (reason ``server_keep_alive``), instead of being tried once more.
2. ``timeout``: after 1.6 s of idleness, past 2 s less the client's safety
   margin of 0.5 s, the connection is retired (``server_keep_alive``).
3. ``max_requests_per_connection=2`` on the client: retired after two
   responses (``max_requests``).
4. ``idle_timeout=0.5`` on the client and a 0.7 s pause: retired
   (``idle_timeout``).

Run it with ``python docs/examples/02_expiry.py``; it takes about 3 seconds.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import rawkeep

SERVER_IDLE_TIMEOUT = 2  # seconds, announced as Keep-Alive: timeout=2
SERVER_MAX = 3  # further requests allowed after a connection's first one


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = -1  # one write per response (see 01_reuse.py)
    # The server really closes idle connections: a read that waits longer
    # than this ends the connection (socketserver.StreamRequestHandler).
    timeout = SERVER_IDLE_TIMEOUT

    def setup(self) -> None:
        super().setup()
        self.served = 0  # one handler object per connection

    def do_GET(self) -> None:
        left = SERVER_MAX - self.served
        self.served += 1
        body = f"{self.path} was request {self.served} on this connection\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Keep-Alive", f"timeout={SERVER_IDLE_TIMEOUT}, max={left}")
        self.end_headers()
        self.wfile.write(body)
        if left == 0:
            self.close_connection = True

    def log_message(self, fmt: str, *args: object) -> None:
        pass


def show(event: rawkeep.Event) -> None:
    """The on_event callback: print each event as it happens."""
    detail = ""
    if isinstance(event, rawkeep.ConnectionExpired | rawkeep.ConnectionClosed):
        detail = f" reason={event.reason}"
    elif isinstance(event, rawkeep.ConnectionReused):
        detail = f" idle_for={event.idle_for:.2f}s"
    print(f"      event: {type(event).__name__} #{event.connection_id}{detail}")


def get(client: rawkeep.Client, url: str) -> None:
    response = client.get(url)
    print(
        f"    GET -> {response.status}, connection #{response.connection_id},"
        f" reused={response.reused}, max={_max(response)}"
    )


def _max(response: rawkeep.Response) -> str:
    keep_alive = response.headers.get("keep-alive", "")
    return keep_alive.rpartition("max=")[2] or "?"


def pause(seconds: float) -> None:
    print(f"    (idle for {seconds} s)")
    time.sleep(seconds)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    print(f"server on {url} sends Keep-Alive: timeout=2, max=3 (then 2, 1, 0)")
    print("(events print as they happen: one raised while a response is read")
    print(" shows above that response's line)\n")
    try:
        with rawkeep.Client(on_event=show) as client:
            print("1. the server's max: 1 + 3 requests, then the connection retires")
            for _ in range(5):
                get(client, url)

            print("\n2. the server's timeout: 2 s less a 0.5 s margin = 1.5 s")
            pause(1.6)
            get(client, url)
            print("    closing the client")

        print("\n3. the client's max_requests_per_connection=2")
        with rawkeep.Client(max_requests_per_connection=2, on_event=show) as client:
            for _ in range(3):
                get(client, url)
            print("    closing the client")

        print("\n4. the client's idle_timeout=0.5")
        with rawkeep.Client(idle_timeout=0.5, on_event=show) as client:
            get(client, url)
            pause(0.7)
            get(client, url)
            stats = client.pool_stats()
            print(
                f"    pool_stats(): opened={stats.opened} reused={stats.reused}"
                f" closed={stats.closed} idle={stats.idle} active={stats.active}"
            )
            print("    closing the client")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


if __name__ == "__main__":
    main()
