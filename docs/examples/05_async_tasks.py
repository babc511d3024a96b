"""Many asyncio tasks, one AsyncClient: the connection story under concurrency.

Starts a small asyncio HTTP/1.1 server on 127.0.0.1 (any free port) that
answers every request after a short pause with ``Keep-Alive: timeout=1,
max=N``, counting N down from 20 on each connection as Apache does. Then
200 tasks send a request each through one ``AsyncClient`` limited to 8
connections. It prints which connections carried them and what became of
the connections once the server's keep-alive limits were reached.

Run it with ``python docs/examples/05_async_tasks.py``; it needs nothing but
rawkeep and the standard library, and talks to no other host.
"""

from __future__ import annotations

import asyncio
import collections
import time

import rawkeep

BODY = b"hello from the asyncio server\n"
#: Requests a connection may carry after its first (the server's "max").
MAX = 20


def response(left: int) -> bytes:
    """A response that tells the client how many more requests the
    connection may carry, and closes it when none are left."""
    keep_alive = f"Keep-Alive: timeout=1, max={left}" if left else "Connection: close"
    return (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/plain\r\n"
        + keep_alive.encode()
        + b"\r\nContent-Length: "
        + str(len(BODY)).encode()
        + b"\r\n\r\n"
        + BODY
    )


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """One connection: answer each request (a GET has no body) until the
    client closes, or the connection has been idle for 1 s."""
    try:
        for left in range(MAX, -1, -1):
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 1.0)
            except (asyncio.TimeoutError, asyncio.IncompleteReadError):
                return
            assert head.startswith(b"GET ")
            await asyncio.sleep(0.002)  # some work, so that tasks overlap
            writer.write(response(left))
            await writer.drain()
    except ConnectionError:
        return
    finally:
        writer.close()


async def main() -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    print(f"server listening on {url}\n")

    counts: collections.Counter[str] = collections.Counter()

    def on_event(event: rawkeep.Event) -> None:
        name = type(event).__name__
        reason = getattr(event, "reason", None)
        counts[f"{name} ({reason})" if reason else name] += 1

    async with rawkeep.AsyncClient(max_connections_per_host=8, on_event=on_event) as client:
        started = time.perf_counter()
        responses = await asyncio.gather(*(client.get(f"{url}/{i}") for i in range(200)))
        elapsed = time.perf_counter() - started
        carriers = collections.Counter(response.connection_id for response in responses)
        print(f"200 tasks, 200 responses in {elapsed * 1000:.0f} ms")
        print(f"carried by {len(carriers)} connections, at most 8 at a time:")
        for connection_id, served in sorted(carriers.items()):
            print(f"  #{connection_id}: {served} responses")
        print(f"\nafter the burst: {client.pool_stats()}\n")

        # Each full connection carried 21 responses: its first, then the 20
        # more its "max" allowed; the last said "Connection: close", and the
        # tasks waiting in line went on over new connections. Now the
        # server's "timeout=1": an idle connection is retired before the
        # server's second is up, so no request meets a closing socket.
        await asyncio.sleep(1.2)
        response = await client.get(f"{url}/after-a-pause")
        print(f"after 1.2 s idle: connection #{response.connection_id}, reused={response.reused}")

    print("\nwhat the client reported:")
    for name, number in sorted(counts.items()):
        print(f"  {number:4} x {name}")
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main())
