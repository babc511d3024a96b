"""Sequential small GETs over one kept-alive connection: rawkeep vs http.client.

A quick, honest check of the per-request cost, not the full benchmark: the
server is a minimal keep-alive responder in a *separate process* (so it does
not compete for the client's GIL), answering every GET with the same 13-byte
body. Clients run interleaved in rounds, in random order; the table shows
the median microseconds per request over the rounds, and each client's
ratio to http.client, computed per round.

The server is not rawkeep's lab server (``rawkeep._app.labserver``) on
purpose. That one parses every request and writes every response with h11,
in a thread per connection; measured against this loop (both in a separate
process, 5 rounds of 5,000 GETs, 2 cores), it made a round trip take about
2.5 times as long (http.client: 96 us here, 257 us there), so the server's
work, not the clients', would fill most of each number and squeeze the
ratios towards 1.

    python benchmarks/quick_get.py [--requests 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import random
import selectors
import socket
import statistics
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!"
)


def serve(listener: socket.socket) -> None:
    """Answer each request head with RESPONSE; keep connections open."""
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    pending: dict[socket.socket, bytes] = {}
    while True:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if sock is listener:
                conn, _ = listener.accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(conn, selectors.EVENT_READ)
                pending[conn] = b""
                continue
            data = sock.recv(65536)
            if not data:
                sel.unregister(sock)
                sock.close()
                del pending[sock]
                continue
            buf = pending[sock] + data
            count = buf.count(b"\r\n\r\n")
            pending[sock] = buf[buf.rfind(b"\r\n\r\n") + 4 :] if count else buf
            if count:
                sock.sendall(RESPONSE * count)


def bench_rawkeep(port: int, n: int) -> tuple[float, int]:
    import rawkeep

    url = f"http://127.0.0.1:{port}/"
    with rawkeep.Client() as client:
        client.get(url)
        start = time.perf_counter()
        for _ in range(n):
            response = client.get(url)
            assert response.content == b"Hello, world!"
        elapsed = time.perf_counter() - start
        return elapsed, client.pool_stats().opened


def bench_http_client(port: int, n: int) -> tuple[float, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    conn.request("GET", "/")
    conn.getresponse().read()
    start = time.perf_counter()
    for _ in range(n):
        conn.request("GET", "/")
        body = conn.getresponse().read()
        assert body == b"Hello, world!"
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed, 1


def bench_h11_loop(port: int, n: int) -> tuple[float, int]:
    """The floor of any h11-based client: one socket, one h11.Connection."""
    import h11

    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = h11.Connection(h11.CLIENT)
    headers = [("Host", f"127.0.0.1:{port}"), ("User-Agent", "h11"), ("Accept", "*/*")]

    def one() -> bytes:
        sock.sendall(conn.send(h11.Request(method="GET", target="/", headers=headers)))
        sock.sendall(conn.send(h11.EndOfMessage()))
        body = b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif type(event) is h11.Data:
                body += event.data
            elif type(event) is h11.EndOfMessage:
                conn.start_next_cycle()
                return body

    one()
    start = time.perf_counter()
    for _ in range(n):
        assert one() == b"Hello, world!"
    elapsed = time.perf_counter() - start
    sock.close()
    return elapsed, 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = multiprocessing.Process(target=serve, args=(listener,), daemon=True)
    server.start()
    listener.close()

    clients: dict[str, Callable[[int, int], tuple[float, int]]] = {
        "http.client": bench_http_client,
        "h11 loop": bench_h11_loop,
        "rawkeep": bench_rawkeep,
    }
    per_request: dict[str, list[float]] = {name: [] for name in clients}
    ratios: dict[str, list[float]] = {name: [] for name in clients}
    opened: dict[str, int] = {}
    try:
        for _ in range(args.rounds):
            order = list(clients)
            random.shuffle(order)
            this_round = {}
            for name in order:
                elapsed, opened[name] = clients[name](port, args.requests)
                this_round[name] = elapsed / args.requests * 1e6
                per_request[name].append(this_round[name])
            for name in clients:
                ratios[name].append(this_round[name] / this_round["http.client"])
    finally:
        server.terminate()
        server.join(5)

    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, ", end="")
    print(f"{args.requests} sequential GETs x {args.rounds} rounds, one connection each")
    print(
        f"{'client':<12} {'median us/req':>14} {'min-max':>16} {'vs http.client':>15} {'conns':>6}"
    )
    for name, values in per_request.items():
        spread = f"{min(values):.1f}-{max(values):.1f}"
        ratio = statistics.median(ratios[name])
        print(
            f"{name:<12} {statistics.median(values):>14.1f} {spread:>16}"
            f" {ratio:>14.2f}x {opened[name]:>6}"
        )


if __name__ == "__main__":
    main()
