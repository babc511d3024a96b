"""``AsyncClient``: the asyncio facade, a shell around the same decisions as ``Client``.

The chain is ``Client``'s, awaited: ``request`` / ``stream`` ->
``_prepare`` (all checks before any I/O) -> ``_send_with_retries`` (the
keep-alive race rule) -> ``_send_once``. The options, the request, the
redirect and retry verdicts are ``_client_base.ClientBase``'s, the pool's
decisions ``PoolCore``'s, each exchange's verdict ``Exchange``'s: one copy
of every rule for both clients.

One client belongs to one event loop, the one it first runs on; any number
of its tasks may share it. Nothing here blocks the loop: connects, TLS
handshakes, reads and writes are awaited, and the pool's books are kept
between awaits, without a lock.

Cancellation. ``CancelledError`` is an exception like any other on the
way up: a connection held when it strikes is discarded (closed, its slot
freed), never returned half-used; a task waiting for a connection leaves
the queue; the error propagates.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from ._aio_connect import open_stream
from ._aio_connection import AsyncConnection
from ._aio_pool import AsyncPool
from ._body import AsyncBodyStream
from ._client_base import ClientBase
from ._exceptions import RawkeepError
from ._models import Response
from ._timeout import USE_CLIENT_DEFAULT, Timeout, TimeoutInput, UseClientDefault

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from types import TracebackType

    from typing_extensions import Unpack

    from ._auth import AuthInput
    from ._client_base import RequestOptions
    from ._headers import HeadersInput
    from ._multipart import FilesInput
    from ._request import Content, FormInput, Request
    from ._url import QueryParams, Route

__all__ = ["AsyncClient"]


class AsyncClient(ClientBase):
    """An HTTP/1.1 client for asyncio with a keep-alive connection pool.

    The same keywords, pool rules, retries, redirects, events, statistics
    and errors as ``Client`` (see its documentation); the verbs are awaited
    and ``stream()`` is an async context manager. One ``AsyncClient`` may
    be shared by any number of tasks of the event loop it first runs on;
    using it from another loop raises ``RuntimeError``. Close it with
    ``aclose()`` (or ``async with``).

    Raises:
        TypeError, ValueError: an option has the wrong type or range.
        InvalidURL: the proxy URL or ``base_url`` can't be used.
    """

    _pool: AsyncPool
    _async_bodies = True

    def _new_pool(self) -> AsyncPool:
        self._loop: asyncio.AbstractEventLoop | None = None
        return AsyncPool(opener=self._open_connection, emitter=self._emitter, limits=self._limits)

    # -- public API ---------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: QueryParams | None = None,
        headers: HeadersInput | None = None,
        content: Content | None = None,
        json: Any = None,
        data: FormInput | None = None,
        files: FilesInput | None = None,
        auth: AuthInput | None = None,
        timeout: TimeoutInput | UseClientDefault = USE_CLIENT_DEFAULT,
        follow_redirects: bool | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> Response:
        """Send a request, read the whole response body, and return it.

        Arguments and errors as for ``Client.request``; ``content`` may also
        be an async iterable of bytes (sent chunked, never retried). The
        connection is back in the pool (or closed) when this returns.

        Raises:
            RuntimeError: the client belongs to another event loop.
            CancelledError: the task was cancelled; the connection it held
                is closed and its slot freed.
        """
        response = await self._send(
            method, url, params, headers, content, json, data, files, auth, timeout,
            follow_redirects,
            True,  # whole: request() reads the body now
        )  # fmt: skip
        try:
            await response.aread()
        except BaseException:
            response.close()
            raise
        return response

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        params: QueryParams | None = None,
        headers: HeadersInput | None = None,
        content: Content | None = None,
        json: Any = None,
        data: FormInput | None = None,
        files: FilesInput | None = None,
        auth: AuthInput | None = None,
        timeout: TimeoutInput | UseClientDefault = USE_CLIENT_DEFAULT,
        follow_redirects: bool | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> AsyncIterator[Response]:
        """Send a request and yield the response before its body is read.

        Read the body with ``aiter_bytes()``, ``aiter_raw()`` or ``aread()``.
        On leaving the block the response is closed as ``Client.stream``
        closes it (a small rest drained, a larger one closes the
        connection). Arguments and errors as for ``request``.
        """
        response = await self._send(
            method, url, params, headers, content, json, data, files, auth, timeout,
            follow_redirects,
            False,
        )  # fmt: skip
        try:
            yield response
        finally:
            await response.aclose()

    async def get(self, url: str, **kwargs: Unpack[RequestOptions]) -> Response:
        """``await request("GET", url, ...)``."""
        return await self.request("GET", url, **kwargs)

    async def head(self, url: str, **kwargs: Unpack[RequestOptions]) -> Response:
        """``await request("HEAD", url, ...)``."""
        return await self.request("HEAD", url, **kwargs)

    async def options(self, url: str, **kwargs: Unpack[RequestOptions]) -> Response:
        """``await request("OPTIONS", url, ...)``."""
        return await self.request("OPTIONS", url, **kwargs)

    async def delete(self, url: str, **kwargs: Unpack[RequestOptions]) -> Response:
        """``await request("DELETE", url, ...)``."""
        return await self.request("DELETE", url, **kwargs)

    async def post(self, url: str, **kwargs: Unpack[RequestOptions]) -> Response:
        """``await request("POST", url, ...)``."""
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Unpack[RequestOptions]) -> Response:
        """``await request("PUT", url, ...)``."""
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Unpack[RequestOptions]) -> Response:
        """``await request("PATCH", url, ...)``."""
        return await self.request("PATCH", url, **kwargs)

    async def aclose(self) -> None:
        """Close every idle connection and refuse new requests.

        Requests in flight finish; their connections close when released.
        Tasks waiting for a connection get ``ClientClosed``. Idempotent.
        """
        self._pool.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the chain ------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        params: QueryParams | None,
        headers: HeadersInput | None,
        content: Content | None,
        json: Any,
        data: FormInput | None,
        files: FilesInput | None,
        auth: AuthInput | None,
        timeout: TimeoutInput | UseClientDefault,
        follow_redirects: bool | UseClientDefault,
        whole: bool,
    ) -> Response:
        self._check_loop()
        request, limits, follow, after = self._prepare(
            method, url, params, headers, content, json, data, files, auth, timeout,
            follow_redirects,
        )  # fmt: skip
        history: list[Response] = []
        while True:
            response = await self._send_with_retries(request, limits, whole)
            if not after:
                return response
            try:
                follow_up = self._next_request(request, response, follow, history)
                if follow_up is None:
                    return response
                await response._aread_or_close()
            except BaseException:
                response.close()
                raise
            history.append(response)
            request = follow_up

    def _check_loop(self) -> None:
        """The client belongs to the loop it first ran on.

        Raises:
            RuntimeError: no loop is running, or another one is.
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._loop is not None:
                raise RuntimeError(
                    "this AsyncClient belongs to another event loop (its connections"
                    " are bound to it): make one AsyncClient per loop"
                )
            self._loop = loop

    async def _send_with_retries(self, request: Request, limits: Timeout, whole: bool) -> Response:
        attempt = 0
        while True:
            conn = await self._pool.acquire(
                request.route,
                pool_timeout=limits.pool,
                connect_timeout=limits.connect,
                fresh=attempt > 0,
                retryable=request.is_retryable,
            )
            try:
                response = await self._send_once(conn, request, limits, whole)
            except RawkeepError as exc:
                self._pool.discard(conn)
                self._retry_or_raise(conn, request, attempt, exc)
                attempt += 1
                continue
            except BaseException:
                self._pool.discard(conn)
                raise
            if response.status != 408:  # most responses: no call
                return response
            if not self._repeat_after_408(conn, request, response, attempt):
                return response
            with contextlib.suppress(RawkeepError):
                await response.aclose()
            attempt += 1

    async def _send_once(
        self, conn: AsyncConnection, request: Request, limits: Timeout, whole: bool
    ) -> Response:
        early = await conn.send_request(
            request.h11_request,
            request.body_chunks(),
            write_timeout=limits.write,
            read_timeout=limits.read,
            expect_continue=request.expects_continue,
            ends_with_head=request.ends_with_head,
            asks_to_close=request.asks_to_close,
        )
        if self._exchange_events:  # off by default: not even a call then
            self._say_sent(conn)
        head = early if early is not None else await conn.receive_head(limits.read)
        if self._exchange_events:
            self._say_head(conn, head)
        content = self._content_at_hand(conn, head) if whole else None
        return Response._from_head(
            head, request.url_text, conn.id, conn.reused, content,
            None if content is not None else AsyncBodyStream(conn, self._pool, limits.read),
            self._max_decoded_size,
        )  # fmt: skip

    # -- connections ----------------------------------------------------------------

    async def _open_connection(
        self, route: Route, connection_id: int, connect_timeout: float | None
    ) -> AsyncConnection:
        stream = await open_stream(self._connector, route, connect_timeout)
        return AsyncConnection(stream, route, connection_id, max_head_size=self._max_header_size)
