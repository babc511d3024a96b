"""Connection reuse, seen from the inside.

Starts a small HTTP/1.1 server on 127.0.0.1 (any free port), sends four
requests with one client, and prints for each response which connection
carried it and whether that connection was reused. Then prints every
lifecycle event the client reported and the pool's counters.

Run it with ``python docs/examples/01_reuse.py``; it needs nothing but
rawkeep and the standard library, and talks to no other host.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import rawkeep


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 makes the server keep the connection open between requests.
    protocol_version = "HTTP/1.1"
    # Buffer the reply so that status line, headers and body leave in one
    # write: two small writes can meet Nagle's algorithm and a delayed ACK,
    # which adds about 40 ms to each response.
    wbufsize = -1

    def do_GET(self) -> None:
        body = f"hello from {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        # Every response says how long it is, so the connection can stay open.
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        pass  # keep the output to the client's story


def describe(event: rawkeep.Event) -> str:
    """One line: the event's type, its connection, and its own fields."""
    fields = event.to_dict()
    name = fields.pop("event")
    connection_id = fields.pop("connection_id")
    for common in ("origin", "time"):
        fields.pop(common)
    details = ", ".join(
        f"{key}={value:.4f}" if isinstance(value, float) else f"{key}={value}"
        for key, value in fields.items()
    )
    return f"{name:<26} #{connection_id}  {details}"


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"server listening on {base}\n")

    events: list[rawkeep.Event] = []
    try:
        with rawkeep.Client(on_event=events.append) as client:
            for path in ("/a", "/b", "/c", "/d"):
                response = client.get(base + path)
                print(
                    f"GET {path} -> {response.status} {response.reason}"
                    f"  connection #{response.connection_id}"
                    f"  reused={response.reused}"
                    f"  body={response.text.strip()!r}"
                )
            stats = client.pool_stats()
        # Leaving the block closed the client, and with it the idle connection.
        closed = client.pool_stats()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    print("\nevents, in order:")
    for event in events:
        print("  " + describe(event))

    print("\npool_stats() before close:")
    print(
        f"  opened={stats.opened} reused={stats.reused} closed={stats.closed}"
        f" idle={stats.idle} active={stats.active}"
    )
    for origin, counts in stats.per_host.items():
        print(f"  {origin}: opened={counts.opened} idle={counts.idle}")
    print("pool_stats() after close:")
    print(
        f"  opened={closed.opened} reused={closed.reused} closed={closed.closed}"
        f" idle={closed.idle} active={closed.active}"
    )


if __name__ == "__main__":
    main()
