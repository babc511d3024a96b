"""``Client``: the blocking facade users call, a shell around the shared decisions.

A request goes down a short chain of methods, each with one job:

``request`` / ``stream``  ->  ``_prepare`` (URL, headers, body; all
validation before any I/O)  ->  ``_send_with_retries`` (the keep-alive race
rule)  ->  ``_send_once`` (take a connection, write the request, read the
head).

What is decided (the options, the request, redirects, the retry rule) is
decided in ``_client_base.ClientBase``, once for this client and
``AsyncClient``; this class does the blocking I/O around it.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any, TypeAlias

from ._body import BodyStream
from ._client_base import ClientBase
from ._connect import open_stream
from ._connection import Connection
from ._exceptions import RawkeepError
from ._models import Response
from ._pool import Pool
from ._timeout import USE_CLIENT_DEFAULT, Timeout, TimeoutInput, UseClientDefault

if TYPE_CHECKING:
    from collections.abc import AsyncIterable, Iterator
    from types import TracebackType

    from typing_extensions import Unpack

    from ._auth import AuthInput
    from ._client_base import RequestOptions
    from ._headers import HeadersInput
    from ._multipart import FilesInput
    from ._request import Content, FormInput, Request
    from ._url import QueryParams, Route


__all__ = ["Client"]

#: JSON-serialisable input for ``json=``.
JSONInput: TypeAlias = Any


class Client(ClientBase):
    """An HTTP/1.1 client with a keep-alive connection pool.

    One ``Client`` holds one pool: use one per application (or per
    component), not one per request, or nothing is reused. It is safe to
    share between threads. Close it (or use ``with``) to close its
    connections.

    Args:
        headers: headers sent with every request (a request's own headers
            replace these by name).
        timeout: a ``Timeout``, one number for all four phases, or ``None``
            for no limits. Default: connect 10 s, read/write/pool 30 s.
        max_connections: open connections across all origins.
        max_connections_per_host: open connections per origin.
        idle_timeout: seconds an idle connection is kept for reuse; ``None``
            keeps it until the server closes it (the stale probe then
            catches it); 0 disables reuse.
        max_requests_per_connection: retire a connection after this many
            responses.
        max_connection_age: retire a connection this many seconds after it
            was opened (useful when DNS can change under a long-lived pool).
        retries: how many times a request that hit the keep-alive race is
            sent again on a new connection (idempotent requests only).
        verify: ``True`` (system trust store), ``False``, a CA bundle path,
            or an ``ssl.SSLContext``.
        cert: client certificate: a PEM path, or ``(cert_path, key_path)``.
        follow_redirects: follow 301/302/303/307/308 (per request too).
        max_redirects: more redirects than this raise ``TooManyRedirects``.
        proxy: an ``http://[user:password@]host:port`` forward proxy for
            every request (CONNECT tunnels for https).
        trust_env: take proxies from ``HTTP_PROXY`` / ``HTTPS_PROXY`` /
            ``ALL_PROXY`` / ``NO_PROXY`` (ignored when ``proxy`` is given).
        uds: path of a Unix domain socket to send every request over; the
            URL still gives the Host header and the target.
        auth: ``(user, password)`` for Basic auth on every request.
        cookies: an ``http.cookiejar.CookieJar`` applied to requests and
            updated from responses (redirects included).
        on_event: called with each ``rawkeep.Event`` (see
            docs/events-and-logging.md).
        exchange_events: also call ``on_event`` with ``RequestSent`` and
            ``ResponseReceived`` for every request and final response head
            (off by default: two more events per request).
        expect_continue_above: send ``Expect: 100-continue`` with bodies
            larger than this many bytes (or of unknown size), and wait for
            the server's go-ahead before sending them (None: only when the
            request's own headers ask for it).
        max_header_size: most bytes of a response head (status line and
            headers); a larger one raises ``RemoteProtocolError``.
        max_decoded_size: most bytes a compressed body may decode to; past
            it ``DecodingError`` stops a decompression bomb (None: no limit).
        tcp_keepalive: seconds a TCP connection may be silent before the
            kernel probes it (TCP keepalive: probes every ``ceil(idle / 6)``
            seconds, given up after 3 unanswered, so a silently dropped
            connection is found within 1.5 times this and discarded by the
            pool's idle probe); ``None`` leaves keepalive off. Not used for
            ``uds``. See docs/timeouts.md.
        base_url: relative request URLs are joined to it, its path kept
            (httpx's rule: ``items`` and ``/items`` from ``http://h/api``
            both go to ``http://h/api/items``); absolute URLs are used as
            they are.
        resolve: a host table, as curl's ``--resolve``: ``"host:port"`` (or
            ``"host"`` for any port; IPv6 in brackets) -> an IP address or a
            sequence of them, dialed in that order (Happy Eyeballs) instead
            of looking the host up. The URL, ``Host``, the pool key, SNI and
            the certificate check keep the name. Applies to the host dialed:
            the proxy's when a proxy is used.

    Raises:
        TypeError, ValueError: an option has the wrong type or range (a
            ``resolve`` entry: named).
        InvalidURL: the proxy URL or ``base_url`` can't be used.
    """

    _pool: Pool

    def _new_pool(self) -> Pool:
        return Pool(opener=self._open_connection, emitter=self._emitter, limits=self._limits)

    # -- public API ---------------------------------------------------------------

    def request(
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
        """Send a request, read the whole body, give the connection back, return the response.

        Args:
            method: e.g. "GET"; sent upper-cased, as requests and httpx do.
            url: an absolute http(s) URL, or one relative to ``base_url``.
            params: query parameters appended to the URL's own (a list
                value repeats its key; docs/api.md).
            headers: they replace the client's headers of the same name.
            content: the body: bytes, str (sent as UTF-8), an iterable of
                bytes (sent chunked), or a binary file (streamed).
            json: a body serialised as JSON (Content-Type application/json).
            data: form fields (urlencoded, or beside ``files``).
            files: a multipart/form-data body (docs/uploads.md).
            timeout: overrides the client's timeout for this request.

        Raises:
            TypeError, ValueError: an argument of the wrong type or value.
            InvalidURL, LocalProtocolError: the URL, or the request as HTTP.
            ClientClosed: the client is closed.
            ConnectError, ProxyError, TLSError: opening a connection.
            TimeoutError: one of the four time limits passed.
            RemoteProtocolError: the server broke the exchange.
        """
        response = self._send(
            method, url, params, headers, content, json, data, files, auth, timeout,
            follow_redirects,
            True,  # whole: request() reads the body now
        )  # fmt: skip
        try:
            response.read()
        except BaseException:
            response.close()
            raise
        return response

    @contextlib.contextmanager
    def stream(
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
    ) -> Iterator[Response]:
        """Send a request and yield the response before its body is read.

        Read the body with ``iter_bytes()``, ``iter_raw()`` or ``read()``.
        On leaving the block the response is closed: an unread rest of at
        most 64 KiB is drained so the connection can be reused, a larger
        one closes the connection. Arguments and errors as for ``request``.
        """
        response = self._send(
            method, url, params, headers, content, json, data, files, auth, timeout,
            follow_redirects,
            False,
        )  # fmt: skip
        try:
            yield response
        finally:
            response.close()

    def get(self, url: str, **kwargs: Unpack[RequestOptions]) -> Response:
        """``request("GET", url, ...)``."""
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Unpack[RequestOptions]) -> Response:
        """``request("HEAD", url, ...)``."""
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Unpack[RequestOptions]) -> Response:
        """``request("OPTIONS", url, ...)``."""
        return self.request("OPTIONS", url, **kwargs)

    def delete(self, url: str, **kwargs: Unpack[RequestOptions]) -> Response:
        """``request("DELETE", url, ...)``."""
        return self.request("DELETE", url, **kwargs)

    def post(self, url: str, **kwargs: Unpack[RequestOptions]) -> Response:
        """``request("POST", url, ...)``."""
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Unpack[RequestOptions]) -> Response:
        """``request("PUT", url, ...)``."""
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Unpack[RequestOptions]) -> Response:
        """``request("PATCH", url, ...)``."""
        return self.request("PATCH", url, **kwargs)

    def close(self) -> None:
        """Close every idle connection and refuse new requests.

        Requests in flight finish; their connections close when released.
        Idempotent.
        """
        self._pool.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the chain ------------------------------------------------------------------

    def _send(
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
        request, limits, follow, after = self._prepare(
            method, url, params, headers, content, json, data, files, auth, timeout,
            follow_redirects,
        )  # fmt: skip
        history: list[Response] = []
        while True:
            response = self._send_with_retries(request, limits, whole)
            if not after:
                return response
            try:
                follow_up = self._next_request(request, response, follow, history)
                if follow_up is None:
                    return response
                response._read_or_close()
            except BaseException:
                response.close()
                raise
            history.append(response)
            request = follow_up

    def _send_with_retries(self, request: Request, limits: Timeout, whole: bool) -> Response:
        attempt = 0
        while True:
            conn = self._pool.acquire(
                request.route,
                pool_timeout=limits.pool,
                connect_timeout=limits.connect,
                fresh=attempt > 0,
                retryable=request.is_retryable,
            )
            try:
                response = self._send_once(conn, request, limits, whole)
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
                response.close()
            attempt += 1

    def _send_once(
        self, conn: Connection, request: Request, limits: Timeout, whole: bool
    ) -> Response:
        body = request.body_chunks()
        if TYPE_CHECKING:  # an async iterable body was refused when the request was built
            assert not isinstance(body, AsyncIterable)
        early = conn.send_request(
            request.h11_request,
            body,
            write_timeout=limits.write,
            read_timeout=limits.read,
            expect_continue=request.expects_continue,
            ends_with_head=request.ends_with_head,
            asks_to_close=request.asks_to_close,
        )
        if self._exchange_events:  # off by default: not even a call then
            self._say_sent(conn)
        head = early if early is not None else conn.receive_head(limits.read)
        if self._exchange_events:
            self._say_head(conn, head)
        content = self._content_at_hand(conn, head) if whole else None
        return Response._from_head(
            head, request.url_text, conn.id, conn.reused, content,
            None if content is not None else BodyStream(conn, self._pool, limits.read),
            self._max_decoded_size,
        )  # fmt: skip

    # -- connections ----------------------------------------------------------------

    def _open_connection(
        self, route: Route, connection_id: int, connect_timeout: float | None
    ) -> Connection:
        stream = open_stream(self._connector, route, connect_timeout)
        return Connection(stream, route, connection_id, max_head_size=self._max_header_size)
