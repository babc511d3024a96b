"""Run inside a test's own network namespace (see ``netns.py``); prints one JSON line.

``eyeballs``
    /etc/hosts here gives ``dual.test`` ::1 first, then 127.0.0.1. Port
    8080 on ::1 is a black hole (a listener whose accept queue is full: the
    kernel drops further SYNs without a word), and a real HTTP server
    listens on 127.0.0.1:8080. Both clients fetch ``http://dual.test:8080/``
    through the system resolver; reported: the resolver's order, the time
    each took, the status, and the open descriptors before, while the
    connection is pooled, and after the client closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import select
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Iterator

#: The port of the ``eyeballs`` scenario, on both addresses.
PORT = 8080


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive

    def do_GET(self) -> None:
        self.server.peers.append(self.client_address)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def http_server(host: str, port: int) -> Iterator[http.server.ThreadingHTTPServer]:
    server = http.server.ThreadingHTTPServer((host, port), Handler)
    server.block_on_close = False  # a connection dropped on purpose never ends
    server.peers = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def black_hole(family: int, host: str, port: int) -> Iterator[None]:
    """A listener on ``host:port`` whose accept queue is full: SYNs vanish."""
    sockets = [socket.socket(family, socket.SOCK_STREAM)]
    try:
        sockets[0].bind((host, port))
        sockets[0].listen(0)
        for _ in range(16):
            filler = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(filler)
            filler.setblocking(False)
            filler.connect_ex((host, port))
            if not select.select([], [filler], [], 0.3)[1]:
                break  # this one hangs: the queue is full
        else:
            raise RuntimeError("connects to a full listener do not hang here")
        yield
    finally:
        for sock in sockets:
            sock.close()


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- eyeballs ---------------------------------------------------------------------


def eyeballs() -> dict[str, Any]:
    url = f"http://dual.test:{PORT}/"
    with http_server("127.0.0.1", PORT), black_hole(socket.AF_INET6, "::1", PORT):
        infos = socket.getaddrinfo("dual.test", PORT, type=socket.SOCK_STREAM)
        result: dict[str, Any] = {"order": [info[4][0] for info in infos]}
        result["sync"] = eyeballs_sync(url)
        result["async"] = asyncio.run(eyeballs_async(url))
    return result


def eyeballs_sync(url: str) -> dict[str, Any]:
    with rawkeep.Client(timeout=5.0) as client:
        before = fd_count()
        started = time.monotonic()
        response = client.get(url)
        elapsed = time.monotonic() - started
        pooled = fd_count()
    deadline = time.monotonic() + 2.0  # the server's end closes in its own time
    while fd_count() != before and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"status": response.status, "elapsed": elapsed, "fds": [before, pooled, fd_count()]}


async def eyeballs_async(url: str) -> dict[str, Any]:
    async with rawkeep.AsyncClient(timeout=5.0) as client:
        before = fd_count()
        started = time.monotonic()
        response = await client.get(url)
        elapsed = time.monotonic() - started
        pooled = fd_count()
    deadline = time.monotonic() + 2.0  # a transport closes its socket a turn later
    while fd_count() != before and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    return {"status": response.status, "elapsed": elapsed, "fds": [before, pooled, fd_count()]}


def main(argv: list[str]) -> dict[str, Any]:
    if argv[0] == "eyeballs":
        return eyeballs()
    raise SystemExit(f"unknown scenario {argv[0]!r}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])), flush=True)
