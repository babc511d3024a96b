"""``Client``: the facade users call. Defaults, request building, retries.

A request goes down a short chain of methods, each with one job:

``request`` / ``stream``  ->  ``_build`` (URL, headers, body; all validation
before any I/O)  ->  ``_send_with_retries`` (the keep-alive race rule)  ->
``_send_once`` (take a connection, write the request, read the head).

The retry rule (RFC 9112 section 9.3.1): a client may resend a request
automatically only when it knows the request is idempotent, and only when
the connection it used was a reused one that failed before any part of the
response arrived: that is the signature of a server closing an idle
connection while our request was on its way. Anything else (a fresh
connection failing, a timeout, a response cut off halfway) means the server
may have acted on the request, so the error is raised, never retried.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any, TypeAlias

from ._body import BodyStream
from ._connect import Connector, open_stream
from ._connection import Connection
from ._events import Emitter, EventCallback, RequestRetried, now
from ._exceptions import (
    ProxyError,
    RawkeepError,
    RemoteProtocolError,
    TooManyRedirects,
    with_context,
)
from ._models import Response
from ._pool import Pool, PoolStats
from ._prepare import RequestFactory
from ._redirects import is_redirect
from ._timeout import (
    DEFAULT_TIMEOUT,
    USE_CLIENT_DEFAULT,
    Timeout,
    TimeoutInput,
    UseClientDefault,
    check_seconds,
    to_timeout,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from http.cookiejar import CookieJar
    from types import TracebackType

    from ._auth import AuthInput
    from ._headers import HeadersInput
    from ._request import Content, FormInput, Request
    from ._socket import CertInput, VerifyInput
    from ._url import QueryParams, Route


__all__ = ["Client"]

#: JSON-serialisable input for ``json=``.
JSONInput: TypeAlias = Any


class Client:
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
        expect_continue_above: send ``Expect: 100-continue`` with bodies
            larger than this many bytes (or of unknown size), and wait for
            the server's go-ahead before sending them (None: only when the
            request's own headers ask for it).
        max_header_size: most bytes of a response head (status line and
            headers); a larger one raises ``RemoteProtocolError``.
        max_decoded_size: most bytes a compressed body may decode to; past
            it ``DecodingError`` stops a decompression bomb (None: no limit).

    Raises:
        TypeError, ValueError: an option has the wrong type or range.
        InvalidURL: the proxy URL can't be used.
    """

    def __init__(
        self,
        *,
        headers: HeadersInput | None = None,
        timeout: TimeoutInput = DEFAULT_TIMEOUT,
        max_connections: int | None = 100,
        max_connections_per_host: int | None = 10,
        idle_timeout: float | None = 30.0,
        max_requests_per_connection: int | None = None,
        max_connection_age: float | None = None,
        retries: int = 1,
        follow_redirects: bool = False,
        max_redirects: int = 20,
        verify: VerifyInput = True,
        cert: CertInput = None,
        proxy: str | None = None,
        trust_env: bool = False,
        uds: str | os.PathLike[str] | None = None,
        auth: AuthInput | None = None,
        cookies: CookieJar | None = None,
        on_event: EventCallback | None = None,
        expect_continue_above: int | None = None,
        max_header_size: int = 64 * 1024,
        max_decoded_size: int | None = None,
    ) -> None:
        self._connector = Connector(
            verify=verify,
            cert=cert,
            proxy=proxy,
            environ=os.environ if trust_env else None,
            uds=uds,
        )
        self._has_cookie_jar = cookies is not None
        self._requests = RequestFactory(
            headers=headers,
            auth=auth,
            cookies=cookies,
            connector=self._connector,
            expect_continue_above=_limit("expect_continue_above", expect_continue_above, 0),
        )
        self._max_header_size = _count("max_header_size", max_header_size, minimum=1024)
        self._max_decoded_size = _limit("max_decoded_size", max_decoded_size, 0)
        if not isinstance(follow_redirects, bool):
            raise TypeError(f"follow_redirects must be a bool, not {follow_redirects!r}")
        self._follow_redirects = follow_redirects
        self._timeout = to_timeout(timeout)
        self._retries = _count("retries", retries, minimum=0)
        self._max_redirects = _count("max_redirects", max_redirects, minimum=0)
        self._emitter = Emitter(on_event)
        self._pool = Pool(
            opener=self._open_connection,
            emitter=self._emitter,
            max_connections=_limit("max_connections", max_connections),
            max_connections_per_host=_limit("max_connections_per_host", max_connections_per_host),
            idle_timeout=check_seconds("idle_timeout", idle_timeout),
            max_requests=_limit("max_requests_per_connection", max_requests_per_connection),
            max_age=check_seconds("max_connection_age", max_connection_age),
        )

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
        auth: AuthInput | None = None,
        timeout: TimeoutInput | UseClientDefault = USE_CLIENT_DEFAULT,
        follow_redirects: bool | UseClientDefault = USE_CLIENT_DEFAULT,
    ) -> Response:
        """Send a request, read the whole response body, and return it.

        The connection is back in the pool (or closed) when this returns.

        Args:
            method: e.g. "GET"; sent as given (upper-case it yourself).
            url: an absolute http or https URL.
            params: query parameters appended to the URL's own.
            headers: headers for this request; they replace the client's
                defaults of the same name.
            content: the body: bytes, str (sent as UTF-8), an iterable of
                bytes (sent chunked), or a binary file (streamed).
            json: a body serialised as JSON (Content-Type application/json).
            data: a dict of form fields (application/x-www-form-urlencoded).
            timeout: overrides the client's timeout for this request.

        Raises:
            InvalidURL: the URL can't be used.
            LocalProtocolError: the request can't be sent as valid HTTP.
            ClientClosed: the client is closed.
            ConnectError, ConnectTimeout, TLSError: opening a connection.
            ReadTimeout, WriteTimeout, PoolTimeout: a time limit passed.
            RemoteProtocolError: the server broke the exchange.
        """
        response = self._send(
            method, url, params, headers, content, json, data, auth, timeout, follow_redirects
        )
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
            method, url, params, headers, content, json, data, auth, timeout, follow_redirects
        )
        try:
            yield response
        finally:
            response.close()

    def get(self, url: str, **kwargs: Any) -> Response:
        """``request("GET", url, ...)``."""
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> Response:
        """``request("HEAD", url, ...)``."""
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> Response:
        """``request("OPTIONS", url, ...)``."""
        return self.request("OPTIONS", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Response:
        """``request("DELETE", url, ...)``."""
        return self.request("DELETE", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Response:
        """``request("POST", url, ...)``."""
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Response:
        """``request("PUT", url, ...)``."""
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Response:
        """``request("PATCH", url, ...)``."""
        return self.request("PATCH", url, **kwargs)

    def pool_stats(self) -> PoolStats:
        """A snapshot of the pool's counters (see ``PoolStats``)."""
        return self._pool.stats()

    def close(self) -> None:
        """Close every idle connection and refuse new requests.

        Requests in flight finish; their connections close when released.
        Idempotent.
        """
        self._pool.close()

    @property
    def is_closed(self) -> bool:
        """Whether ``close()`` was called; requests then raise ``ClientClosed``."""
        return self._pool.is_closed

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
        auth: AuthInput | None,
        timeout: TimeoutInput | UseClientDefault,
        follow_redirects: bool | UseClientDefault,
    ) -> Response:
        request = self._requests.build(method, url, params, headers, content, json, data, auth)
        limits = self._timeout if timeout is USE_CLIENT_DEFAULT else to_timeout(timeout)
        if follow_redirects is USE_CLIENT_DEFAULT:
            follow_redirects = self._follow_redirects
        return self._send_handling_redirects(request, limits, follow_redirects)

    def _send_handling_redirects(
        self, request: Request, limits: Timeout, follow: bool
    ) -> Response:
        history: list[Response] = []
        while True:
            response = self._send_with_retries(request, limits)
            if response.status == 407 and request.route.proxy is not None:
                response.close()
                raise ProxyError(
                    f"proxy {request.route.proxy} requires authentication (407)",
                    status=407,
                    origin=str(request.url.origin),
                )
            if self._has_cookie_jar:
                self._requests.store_cookies(request, response)
            if not (follow and is_redirect(response)):
                if history:
                    response.history = history
                return response
            try:
                if len(history) >= self._max_redirects:
                    raise TooManyRedirects(
                        f"more than {self._max_redirects} redirects, last to {response.url}",
                        origin=str(request.url.origin),
                    )
                request = self._requests.follow(request, response)
                response._read_or_close()
            except BaseException:
                response.close()
                raise
            history.append(response)

    def _send_with_retries(self, request: Request, limits: Timeout) -> Response:
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
                return self._send_once(conn, request, limits)
            except RawkeepError as exc:
                self._pool.discard(conn)
                with_context(exc, origin=conn.origin_str, connection_id=conn.id)
                if not (conn.reused and not conn.response_started):
                    raise
                if not isinstance(exc, RemoteProtocolError):
                    raise  # timeouts and local errors are never the race
                why_not = self._why_not_retry(request, attempt)
                if why_not is not None:
                    raise RemoteProtocolError(
                        f"{exc.message} (on reused connection #{conn.id}; not retried: {why_not})",
                        origin=conn.origin_str,
                        connection_id=conn.id,
                    ) from exc
                attempt += 1
                self._emit_retry(conn, request, attempt, exc)
            except BaseException:
                self._pool.discard(conn)
                raise

    def _why_not_retry(self, request: Request, attempt: int) -> str | None:
        if not request.is_idempotent:
            return f"{request.method} is not idempotent"
        if not request.is_replayable:
            return "the body can't be sent again"
        if attempt >= self._retries:
            return f"retries={self._retries} spent"
        return None

    def _emit_retry(
        self, conn: Connection, request: Request, attempt: int, exc: RawkeepError
    ) -> None:
        if self._emitter.enabled:
            self._emitter.emit(
                RequestRetried(
                    connection_id=conn.id,
                    origin=conn.origin_str,
                    time=now(),
                    method=request.method,
                    url=request.url_text,
                    attempt=attempt,
                    error=exc.message,
                )
            )

    def _send_once(self, conn: Connection, request: Request, limits: Timeout) -> Response:
        early = conn.send_request(
            request.h11_request,
            request.body_chunks(),
            write_timeout=limits.write,
            read_timeout=limits.read,
            expect_continue=request.expects_continue,
            ends_with_head=request.ends_with_head,
            asks_to_close=request.asks_to_close,
        )
        head = early if early is not None else conn.receive_head(limits.read)
        return Response._from_head(
            head,
            request.url_text,
            BodyStream(conn, self._pool, limits.read),
            connection_id=conn.id,
            reused=conn.reused,
            max_decoded_size=self._max_decoded_size,
        )

    # -- connections ----------------------------------------------------------------

    def _open_connection(
        self, route: Route, connection_id: int, connect_timeout: float | None
    ) -> Connection:
        stream = open_stream(self._connector, route, connect_timeout)
        return Connection(stream, route, connection_id, max_head_size=self._max_header_size)


def _count(name: str, value: int, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _limit(name: str, value: int | None, minimum: int = 1) -> int | None:
    """An optional count: None (no limit) or an int of at least ``minimum``."""
    return None if value is None else _count(name, value, minimum=minimum)
