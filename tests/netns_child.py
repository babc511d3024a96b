"""Run inside a test's own network namespace (see ``netns.py``); prints one JSON line.

``eyeballs``
    /etc/hosts here gives ``dual.test`` ::1 first, then 127.0.0.1. Port
    8080 on ::1 is a black hole (a listener whose accept queue is full: the
    kernel drops further SYNs without a word), and a real HTTP server
    listens on 127.0.0.1:8080. Both clients fetch ``http://dual.test:8080/``
    through the system resolver; reported: the resolver's order, the time
    each took, the status, and the open descriptors before, while the
    connection is pooled, and after the client closed.

``keepalive KIND SECONDS|none``
    A ``Client`` (KIND ``sync``) or ``AsyncClient`` (``async``) with
    ``tcp_keepalive=SECONDS`` fetches a page from a local server, so that
    one connection sits idle in its pool. Then an nftables rule drops that
    connection's packets silently, both ways (a NAT that forgot the flow:
    new connections still pass). Reported: how long until the kernel gave
    the connection up (it leaves /proc/net/tcp's ESTABLISHED entries), the
    next request's outcome and time, and the client's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Iterator

#: The port of the ``eyeballs`` scenario, on both addresses.
PORT = 8080
#: ``keepalive``: the longest wait for the kernel to give the connection up.
DETECTION_WAIT = 6.0
#: ``keepalive``: the read timeout of the request sent after the drop.
READ_TIMEOUT = 3.0


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


class Server(http.server.ThreadingHTTPServer):
    block_on_close = False  # a connection dropped on purpose never ends

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a connection the test broke on purpose: no traceback


@contextlib.contextmanager
def http_server(host: str, port: int) -> Iterator[Server]:
    server = Server((host, port), Handler)
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


# -- keepalive --------------------------------------------------------------------


def nft(*args: str) -> None:
    subprocess.run(["nft", *args], check=True, timeout=10, capture_output=True)


@contextlib.contextmanager
def dropped(client_port: int) -> Iterator[None]:
    """Drop every packet of the connection from ``client_port``, both ways."""
    table = f"rawkeep_{os.getpid()}"
    nft("add", "table", "inet", table)
    try:
        nft("add", "chain", "inet", table, "out", "{ type filter hook output priority 0 ; }")
        nft("add", "rule", "inet", table, "out", "tcp", "sport", str(client_port), "drop")
        nft("add", "rule", "inet", table, "out", "tcp", "dport", str(client_port), "drop")
        yield
    finally:
        nft("delete", "table", "inet", table)


def is_established(local_port: int) -> bool:
    """Whether /proc/net/tcp lists an ESTABLISHED connection from ``local_port``."""
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == local_port and fields[3] == "01":
                return True
    return False


def outcome(events: list[rawkeep.Event], started: float, result: Any) -> dict[str, Any]:
    if isinstance(result, BaseException):
        answer = {"error": type(result).__name__, "message": str(result)}
    else:
        answer = {"status": result.status, "reused": result.reused}
    return {
        **answer,
        "elapsed": time.monotonic() - started,
        "events": [type(event).__name__ for event in events],
    }


def keepalive_sync(seconds: float | None) -> dict[str, Any]:
    events: list[rawkeep.Event] = []
    timeout = rawkeep.Timeout(5.0, read=READ_TIMEOUT)
    with (
        http_server("127.0.0.1", 0) as server,
        rawkeep.Client(tcp_keepalive=seconds, timeout=timeout, on_event=events.append) as client,
    ):
        assert client.get(f"http://127.0.0.1:{server.server_port}/").status == 200
        client_port = server.peers[-1][1]  # type: ignore[attr-defined]
        with dropped(client_port):
            started = time.monotonic()
            while is_established(client_port) and time.monotonic() - started < DETECTION_WAIT:
                time.sleep(0.05)
            detected = None if is_established(client_port) else time.monotonic() - started
            events.clear()
            started = time.monotonic()
            try:
                result: Any = client.get(f"http://127.0.0.1:{server.server_port}/")
            except rawkeep.RawkeepError as exc:
                result = exc
            return {"detected_after": detected, **outcome(events, started, result)}


async def keepalive_async(seconds: float | None) -> dict[str, Any]:
    events: list[rawkeep.Event] = []
    timeout = rawkeep.Timeout(5.0, read=READ_TIMEOUT)
    with http_server("127.0.0.1", 0) as server:
        url = f"http://127.0.0.1:{server.server_port}/"
        async with rawkeep.AsyncClient(
            tcp_keepalive=seconds, timeout=timeout, on_event=events.append
        ) as client:
            assert (await client.get(url)).status == 200
            client_port = server.peers[-1][1]  # type: ignore[attr-defined]
            with dropped(client_port):
                started = time.monotonic()
                while is_established(client_port) and time.monotonic() - started < DETECTION_WAIT:
                    await asyncio.sleep(0.05)  # the loop runs: it sees the socket's error
                detected = None if is_established(client_port) else time.monotonic() - started
                events.clear()
                started = time.monotonic()
                try:
                    result: Any = await client.get(url)
                except rawkeep.RawkeepError as exc:
                    result = exc
                return {"detected_after": detected, **outcome(events, started, result)}


def main(argv: list[str]) -> dict[str, Any]:
    if argv[0] == "eyeballs":
        return eyeballs()
    if argv[0] == "keepalive":
        kind, value = argv[1], argv[2]
        seconds = None if value == "none" else float(value)
        if kind == "sync":
            return keepalive_sync(seconds)
        return asyncio.run(keepalive_async(seconds))
    raise SystemExit(f"unknown scenario {argv[0]!r}")


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])), flush=True)
