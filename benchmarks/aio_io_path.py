"""The asyncio I/O path: asyncio streams against rawkeep's AsyncStream.

A tiny keep-alive server (in a child process, so that it does not share the
client's loop or GIL) answers every request with the same small response.
One client connection sends a small GET and reads the whole response, again
and again:

(a) asyncio streams: ``open_connection``, ``writer.write``, ``reader.read``;
(b) ``rawkeep._aio_socket.AsyncStream``: ``send_all``, ``recv``.

Only the I/O path is measured (no HTTP parsing): each reads until it holds
the response's known length. Printed: the best of several runs, per request.

    python benchmarks/aio_io_path.py [--requests 20000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

# This checkout's rawkeep, not an installed one.
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

REQUEST = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n\r\n"
TIMEOUT = None if "--no-timeout" in sys.argv else 5.0
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!"
)


class _Answer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.pending = b""

    def data_received(self, data: bytes) -> None:
        self.pending += data
        count = self.pending.count(b"\r\n\r\n")
        if count:
            self.pending = self.pending[self.pending.rindex(b"\r\n\r\n") + 4 :]
            self.transport.write(RESPONSE * count)


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Answer, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)  # until the parent closes stdin
    server.close()


async def with_streams(port: int, requests: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    size = len(RESPONSE)
    started = time.perf_counter()
    for _ in range(requests):
        writer.write(REQUEST)
        got = 0
        while got < size:
            got += len(await reader.read(65536))
    elapsed = time.perf_counter() - started
    writer.close()
    await writer.wait_closed()
    return elapsed


async def with_async_stream(port: int, requests: int) -> float:
    from rawkeep._aio_socket import connect

    stream = await connect("127.0.0.1", port, timeout=5)
    size = len(RESPONSE)
    started = time.perf_counter()
    for _ in range(requests):
        await stream.send_all(REQUEST, TIMEOUT)
        got = 0
        while got < size:
            got += len(await stream.recv(65536, TIMEOUT))
    elapsed = time.perf_counter() - started
    stream.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-timeout", action="store_true", help="AsyncStream without timeouts")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve())
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        clients = {"asyncio streams": with_streams, "AsyncStream": with_async_stream}
        best = dict.fromkeys(clients, float("inf"))
        for _ in range(args.runs):  # interleaved, so drift hits both alike
            for name, client in clients.items():
                best[name] = min(best[name], asyncio.run(client(port, args.requests)))
    finally:
        server.communicate("")
    base = best["asyncio streams"]
    print(
        f"{args.requests} requests per run, best of {args.runs}, "
        f"Python {sys.version.split()[0]}, {sys.platform}"
    )
    print(f"{'client':<18} {'requests/s':>11} {'us/request':>11} {'vs streams':>11}")
    for name, elapsed in best.items():
        print(
            f"{name:<18} {args.requests / elapsed:>11,.0f} "
            f"{elapsed / args.requests * 1e6:>11.1f} {base / elapsed:>10.2f}x"
        )


if __name__ == "__main__":
    main()
