"""AsyncClient under tasks: sharing, the pool's waiters, cancellation, loops.

These are the asyncio-only behaviours; every behaviour both clients share
runs on both through the ``make_client`` fixture. Each test runs its own
event loop with ``asyncio.run`` and bounds every wait.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from tests.servers.scripted import ScriptedServer, ServerConnection

T = TypeVar("T")

#: No test here may take longer than this.
LIMIT = 20.0


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on a new loop, bounded; the loop must end with no task
    left pending (asyncio.run cancels them and would hide a leak)."""

    async def bounded() -> T:
        result = await asyncio.wait_for(coro, LIMIT)
        current = asyncio.current_task()
        left = [task for task in asyncio.all_tasks() if task is not current]
        assert left == [], f"tasks left pending: {left}"
        return result

    result = asyncio.run(bounded())
    gc.collect()  # an unclosed transport warns when collected: fail this test
    return result


def make(**kwargs: Any) -> rawkeep.AsyncClient:
    kwargs.setdefault("timeout", 5.0)
    return rawkeep.AsyncClient(**kwargs)


def _assert_clean(client: rawkeep.AsyncClient) -> None:
    stats = client.pool_stats()
    assert stats.active == 0, stats
    assert stats.opened == stats.closed + stats.idle, stats


# -- many tasks, one client --------------------------------------------------------


def test_hundreds_of_tasks_share_one_client(server: ScriptedServer) -> None:
    async def main() -> rawkeep.PoolStats:
        async with make(max_connections_per_host=8) as client:
            responses = await asyncio.gather(
                *(client.get(f"{server.url}/{i}") for i in range(300))
            )
            assert [r.status for r in responses] == [200] * 300
            assert {r.content for r in responses} == {f"/{i}".encode() for i in range(300)}
            return client.pool_stats()

    stats = run(main())
    assert stats.opened <= 8  # the limit held
    assert stats.reused >= 300 - 8  # and everything else rode kept-alive connections


def test_waiters_are_served_in_arrival_order(
    start_keepalive_server: Callable[..., ScriptedServer],
) -> None:
    server = start_keepalive_server(response_delay=0.05)
    served: list[int] = []

    async def main() -> None:
        async with make(max_connections_per_host=1) as client:

            async def one(i: int) -> None:
                await client.get(f"{server.url}/{i}")
                served.append(i)

            tasks = []
            for i in range(10):
                tasks.append(asyncio.create_task(one(i)))
                await asyncio.sleep(0.005)  # arrive in this order
            await asyncio.gather(*tasks)
            _assert_clean(client)

    run(main())
    assert served == list(range(10))


def test_pool_timeout_while_waiting(
    start_keepalive_server: Callable[..., ScriptedServer],
) -> None:
    server = start_keepalive_server(response_delay=1.0)

    async def main() -> None:
        timeout = rawkeep.Timeout(connect=5.0, read=5.0, write=5.0, pool=0.2)
        async with make(max_connections_per_host=1, timeout=timeout) as client:
            slow = asyncio.create_task(client.get(server.url + "/slow"))
            await asyncio.sleep(0.1)
            started = time.monotonic()
            with pytest.raises(rawkeep.PoolTimeout):
                await client.get(server.url + "/waits")
            assert time.monotonic() - started < 1.0
            assert (await slow).status == 200
            _assert_clean(client)

    run(main())
    assert [r.path for r in server.requests] == ["/slow"]


# -- cancellation ------------------------------------------------------------------


def _silent_after_request(conn: ServerConnection) -> None:
    """Reads one request and never answers (until the client gives up)."""
    if conn.read_request() is not None:
        conn.sleep(10)


def test_cancelled_while_waiting_for_the_head_closes_the_connection(
    start_server: Callable[..., ScriptedServer],
) -> None:
    server = start_server(_silent_after_request)

    async def main() -> None:
        async with make() as client:
            task = asyncio.create_task(client.get(server.url))
            assert await _wait_until(lambda: server.wait_for_requests(1, timeout=0))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            stats = client.pool_stats()
            assert stats.active == 0
            assert stats.idle == 0
            assert stats.closed == 1

    run(main())
    assert (
        server.record(0).wait_for_peer_closed(5.0)
        if hasattr(server.record(0), "wait_for_peer_closed")
        else True
    )


def test_cancelled_while_waiting_for_the_pool_never_sends(
    start_keepalive_server: Callable[..., ScriptedServer],
) -> None:
    server = start_keepalive_server(response_delay=0.3)

    async def main() -> None:
        async with make(max_connections_per_host=1) as client:
            first = asyncio.create_task(client.get(server.url + "/first"))
            await asyncio.sleep(0.05)
            waiting = asyncio.create_task(client.get(server.url + "/cancelled"))
            await asyncio.sleep(0.05)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert (await first).status == 200
            assert (await client.get(server.url + "/after")).status == 200
            _assert_clean(client)

    run(main())
    assert [r.path for r in server.requests] == ["/first", "/after"]


def test_cancelled_mid_body_never_returns_the_connection(
    start_server: Callable[..., ScriptedServer],
) -> None:
    def script(conn: ServerConnection) -> None:
        while (request := conn.read_request()) is not None:
            if request.path == "/slow":
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
                conn.sleep(10)
                return
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    server = start_server(script)

    async def main() -> None:
        async with make() as client:
            task = asyncio.create_task(client.get(server.url + "/slow"))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            response = await client.get(server.url + "/next")
            assert response.content == b"ok"
            assert response.connection_id == 1  # not the half-read one
            _assert_clean(client)

    run(main())


def test_wait_for_timeout_cancels_cleanly(start_server: Callable[..., ScriptedServer]) -> None:
    server = start_server(_silent_after_request)

    async def main() -> None:
        async with make() as client:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.get(server.url), 0.2)
            stats = client.pool_stats()
            assert stats.active == 0
            assert stats.idle == 0

    run(main())


def test_cancelled_while_connecting_frees_the_slot(never_accepting_listener: str) -> None:
    async def main() -> None:
        async with make(max_connections=1) as client:
            task = asyncio.create_task(client.get(never_accepting_listener))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            stats = client.pool_stats()
            assert stats.active == 0
            assert stats.opened == 0

    run(main())


def test_cancelled_during_the_tls_handshake_frees_the_slot(
    start_server: Callable[..., ScriptedServer], server: ScriptedServer
) -> None:
    def silent(conn: ServerConnection) -> None:
        # Takes the TCP connection and reads the ClientHello, never answers;
        # notes when the client closes.
        conn.wait_for_peer_close(10)

    tls_server = start_server(silent)
    url = tls_server.url.replace("http://", "https://")
    timeout = rawkeep.Timeout(connect=5.0, read=5.0, write=5.0, pool=1.0)

    async def main() -> None:
        async with make(max_connections=1, timeout=timeout) as client:
            task = asyncio.create_task(client.get(url))
            assert await _wait_until(lambda: tls_server.accepted == 1)
            await asyncio.sleep(0.1)  # the handshake is under way
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            stats = client.pool_stats()
            assert stats.active == 0
            assert stats.opened == 0
            # The one slot is free again: another origin gets it at once.
            assert (await client.get(server.url + "/after")).status == 200

    run(main())
    assert tls_server.wait_for_peer_closed(0), "the half-open TLS connection stayed open"


def test_cancelled_while_writing_the_body_closes_the_connection(
    start_server: Callable[..., ScriptedServer],
) -> None:
    cancelled = threading.Event()

    def stops_reading(conn: ServerConnection) -> None:
        conn.recv_some()  # the head and the start of the body, then nothing...
        cancelled.wait(10)
        conn.wait_for_peer_close(10)  # ...until the test has cancelled

    server = start_server(stops_reading)

    async def main() -> None:
        async with make() as client:
            body = b"x" * (32 * 1024 * 1024)  # more than the socket buffers hold
            task = asyncio.create_task(client.post(server.url, content=body))
            assert await _wait_until(lambda: server.accepted == 1)
            await asyncio.sleep(0.3)  # the write is waiting for the buffer to drain
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            cancelled.set()
            stats = client.pool_stats()
            assert stats.active == 0
            assert stats.idle == 0
            assert stats.closed == 1

    run(main())
    assert server.wait_for_peer_closed(0), "the connection cancelled mid-body stayed open"


# -- streaming ---------------------------------------------------------------------


def test_stream_reads_in_pieces_and_gives_the_connection_back(server: ScriptedServer) -> None:
    async def main() -> None:
        async with make() as client:
            async with client.stream("GET", server.url + "/a") as response:
                assert response.status == 200
                pieces = [piece async for piece in response.aiter_bytes()]
            assert b"".join(pieces) == b"/a"
            assert response.is_closed
            again = await client.get(server.url + "/b")
            assert again.reused
            assert again.connection_id == response.connection_id

    run(main())


def test_sync_body_methods_refuse_an_async_response(server: ScriptedServer) -> None:
    async def main() -> None:
        async with make() as client, client.stream("GET", server.url + "/a") as response:
            with pytest.raises(RuntimeError, match="aread"):
                response.read()
            with pytest.raises(RuntimeError, match="aread"):
                response.iter_bytes()
            assert await response.aread() == b"/a"

    run(main())


def test_async_body_methods_refuse_a_sync_response(
    client: rawkeep.Client, server: ScriptedServer
) -> None:
    with client.stream("GET", server.url + "/a") as response:
        with pytest.raises(RuntimeError, match="read"):
            response.aiter_bytes()
        assert response.read() == b"/a"


def test_async_iterable_body_is_sent_chunked(start_server: Callable[..., ScriptedServer]) -> None:
    def script(conn: ServerConnection) -> None:
        request = conn.read_request()
        if request is not None:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    server = start_server(script)

    async def body() -> Any:
        for part in (b"one ", b"", b"two"):
            await asyncio.sleep(0)
            yield part

    async def main() -> None:
        async with make() as client:
            response = await client.post(server.url, content=body())
            assert response.content == b"ok"

    run(main())
    request = server.requests[0]
    assert request.body == b"one two"
    assert request.header("transfer-encoding") == b"chunked"


def test_the_sync_client_refuses_an_async_iterable_body(
    client: rawkeep.Client, server: ScriptedServer
) -> None:
    async def body() -> Any:
        yield b"x"

    with pytest.raises(TypeError, match="AsyncClient"):
        client.post(server.url, content=body())
    assert server.accepted == 0


# -- loops and threads ---------------------------------------------------------------


def test_a_client_belongs_to_one_loop(server: ScriptedServer) -> None:
    client = make()

    async def use() -> int:
        return (await client.get(server.url)).status

    async def use_and_close() -> int:
        async with client:
            return await use()

    assert run(use_and_close()) == 200
    with pytest.raises(RuntimeError, match="another event loop"):
        run(use())
    assert server.accepted == 1


def test_a_client_used_from_another_thread_is_refused(server: ScriptedServer) -> None:
    client = make()
    errors: list[BaseException] = []

    async def use() -> None:
        await client.get(server.url)

    async def main() -> None:
        await use()

        def other() -> None:
            try:
                asyncio.run(use())
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=other)
        thread.start()
        await asyncio.to_thread(thread.join, 5.0)
        await client.aclose()

    run(main())
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)


def test_bad_input_is_refused_before_any_io(server: ScriptedServer) -> None:
    async def main() -> None:
        async with make() as client:
            with pytest.raises(rawkeep.InvalidURL):
                await client.get("ftp://127.0.0.1/")
            with pytest.raises(TypeError):
                await client.post(server.url, content=12)
            with pytest.raises(rawkeep.LocalProtocolError):
                await client.get(server.url, headers={"X": "a\r\nb"})

    run(main())
    assert server.accepted == 0


def test_closed_client_refuses_and_waiters_are_told(
    start_keepalive_server: Callable[..., ScriptedServer],
) -> None:
    server = start_keepalive_server(response_delay=0.3)

    async def main() -> None:
        client = make(max_connections_per_host=1)
        first = asyncio.create_task(client.get(server.url + "/1"))
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(client.get(server.url + "/2"))
        await asyncio.sleep(0.05)
        await client.aclose()
        with pytest.raises(rawkeep.ClientClosed):
            await waiting
        assert (await first).status == 200
        with pytest.raises(rawkeep.ClientClosed):
            await client.get(server.url)
        assert client.pool_stats().active == 0

    run(main())


async def _wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()
