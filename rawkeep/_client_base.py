"""What ``Client`` and ``AsyncClient`` share: options, requests, redirect and retry verdicts.

Both clients take the same keywords and make the same decisions; only how
they wait differs (blocking sockets and a thread condition, or the event
loop). Everything here is decided without I/O, once, for both:

- the options, checked when the client is made (``ClientBase.__init__``);
- a caller's arguments turned into a ``Request`` before any I/O
  (``_prepare``, through ``RequestFactory``);
- after each response: a proxy's 407, cookies, whether a redirect is
  followed and where (``_next_request``);
- after a failure: whether the request may be sent again (``_retry_or_raise``).

The retry rule (RFC 9112 section 9.3.1): a client may resend a request
automatically only when it knows the request is idempotent, and only when
the connection it used was a reused one that failed before any part of the
response arrived: that is the signature of a server closing an idle
connection while our request was on its way. Anything else (a fresh
connection failing, a timeout, a response cut off halfway) means the server
may have acted on the request, so the error is raised, never retried.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ._connect import Connector
from ._events import Emitter, RequestRetried, RequestSent, ResponseReceived, now
from ._exceptions import ProxyError, RemoteProtocolError, TooManyRedirects, with_context
from ._keepalive import ExpiryRules
from ._pool_core import PoolLimits
from ._prepare import RequestFactory
from ._redirects import is_redirect
from ._tcp import DEFAULT_TCP_KEEPALIVE
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
    from http.cookiejar import CookieJar

    from typing_extensions import TypedDict

    from ._auth import AuthInput
    from ._connection_core import ConnectionCore
    from ._events import EventCallback
    from ._exceptions import RawkeepError
    from ._exchange import Head
    from ._headers import HeadersInput
    from ._models import Response
    from ._multipart import FilesInput
    from ._pool_core import Pooled, PoolStats
    from ._pool_shell import PoolShell
    from ._request import Content, FormInput, Request
    from ._resolve import ResolveInput
    from ._socket import CertInput, VerifyInput
    from ._url import QueryParams

    class RequestOptions(TypedDict, total=False):
        """The keywords of ``request()`` after the URL, for the verbs'
        ``**options``: type checkers check them against these, as if each
        verb had spelled them out (typing only: nothing of it runs)."""

        params: QueryParams | None
        headers: HeadersInput | None
        content: Content | None
        json: Any
        data: FormInput | None
        files: FilesInput | None
        auth: AuthInput | None
        timeout: TimeoutInput | UseClientDefault
        follow_redirects: bool | UseClientDefault


__all__ = ["ClientBase"]


class ClientBase:
    """The options and decisions ``Client`` and ``AsyncClient`` share (see
    the module docstring; the keywords are documented on ``Client``)."""

    #: Whether ``content`` may be an async iterable (only the asyncio shell
    #: can read one).
    _async_bodies = False

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
        exchange_events: bool = False,
        expect_continue_above: int | None = None,
        max_header_size: int = 64 * 1024,
        max_decoded_size: int | None = None,
        tcp_keepalive: float | None = DEFAULT_TCP_KEEPALIVE,
        base_url: str | None = None,
        resolve: ResolveInput | None = None,
    ) -> None:
        self._connector = Connector(
            verify=verify, cert=cert, proxy=proxy, environ=os.environ if trust_env else None,
            uds=uds, tcp_keepalive=tcp_keepalive, resolve=resolve,
        )  # fmt: skip
        self._requests = RequestFactory(
            headers=headers, auth=auth, cookies=cookies, connector=self._connector,
            expect_continue_above=_limit("expect_continue_above", expect_continue_above, 0),
            async_bodies=self._async_bodies, base_url=base_url,
        )  # fmt: skip
        self._max_header_size = _count("max_header_size", max_header_size, minimum=1024)
        self._max_decoded_size = _limit("max_decoded_size", max_decoded_size, 0)
        self._follow_redirects = _flag("follow_redirects", follow_redirects)
        self._timeout = to_timeout(timeout)
        self._retries = _count("retries", retries, minimum=0)
        self._max_redirects = _count("max_redirects", max_redirects, minimum=0)
        self._emitter = Emitter(on_event)
        self._exchange_events = _flag("exchange_events", exchange_events)
        self._limits = _pool_limits(max_connections, max_connections_per_host,
            idle_timeout, max_requests_per_connection, max_connection_age)  # fmt: skip
        self._pool = self._new_pool()

    def _new_pool(self) -> PoolShell[Any]:
        """The shell's pool, made from ``_limits`` and ``_emitter``."""
        raise NotImplementedError

    def pool_stats(self) -> PoolStats:
        """A snapshot of the pool's counters (see ``PoolStats``); no I/O."""
        return self._pool.stats()

    @property
    def is_closed(self) -> bool:
        """Whether the client was closed; requests then raise ``ClientClosed``."""
        return self._pool.is_closed

    # -- before: the request --------------------------------------------------------

    def _prepare(
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
    ) -> tuple[Request, Timeout, bool, bool]:
        """The request, its time limits, whether redirects are followed, and
        whether a response needs ``_next_request`` at all (a redirect to
        follow, a proxy's 407 to catch, a cookie jar to update); every check
        of the caller's input, before any I/O."""
        request = self._requests.build(
            method, url, params, headers, content, json, data, files, auth
        )
        limits = self._timeout if timeout is USE_CLIENT_DEFAULT else to_timeout(timeout)
        if follow_redirects is USE_CLIENT_DEFAULT:
            follow_redirects = self._follow_redirects
        after = follow_redirects or self._requests.has_cookie_jar or request.via_proxy
        return request, limits, follow_redirects, after

    # -- after: the response ---------------------------------------------------------

    def _content_at_hand(self, conn: ConnectionCore, head: Head) -> bytes | None:
        """For ``request()``, which reads the body anyway: the whole body,
        when it all came with the head and needs no decoding (most small
        responses); the cycle then ends here and the connection goes back to
        the pool at once. None: the body is read through a body stream, as
        in ``stream()``."""
        if head.content_encoding is not None:
            return None
        content = conn.take_whole_body()
        if content is not None:
            self._pool.release(conn)
        return content

    def _next_request(
        self, request: Request, response: Response, follow: bool, history: list[Response]
    ) -> Request | None:
        """What follows ``response``: None when it is the caller's answer,
        else the request its redirect leads to (the shell then reads or
        closes ``response`` and appends it to ``history``). On an exception
        the shell closes ``response``.

        Raises:
            ProxyError: the proxy wants credentials (407).
            TooManyRedirects: more than ``max_redirects`` redirects.
            RemoteProtocolError: the Location can't be followed.
        """
        if response.status == 407 and request.via_proxy:
            raise ProxyError(
                f"proxy {request.route.proxy} requires authentication (407)",
                status=407,
                origin=str(request.url.origin),
            )
        if self._requests.has_cookie_jar:
            self._requests.store_cookies(request, response)
        if not (follow and is_redirect(response)):
            if history:
                response.history = history
            return None
        if len(history) >= self._max_redirects:
            raise TooManyRedirects(
                f"more than {self._max_redirects} redirects, last to {response.url}",
                origin=str(request.url.origin),
            )
        return self._requests.follow(request, response)

    # -- after a failure: the retry rule ------------------------------------------

    def _retry_or_raise(
        self, conn: Pooled, request: Request, attempt: int, exc: RawkeepError
    ) -> None:
        """``exc`` ended ``request`` on ``conn`` (already discarded): return
        to send it again on a fresh connection, having said so with
        ``RequestRetried``; else raise the error to give the caller."""
        origin = str(conn.route.origin)
        with_context(exc, origin=origin, connection_id=conn.id)
        if not (conn.reused and not conn.response_started):
            raise exc
        if not isinstance(exc, RemoteProtocolError):
            raise exc  # timeouts and local errors are never the race
        self._pool.learn_race(conn)
        why_not = self._why_not_retry(request, attempt)
        if why_not is not None:
            raise RemoteProtocolError(
                f"{exc.message} (on reused connection #{conn.id}; not retried: {why_not})",
                origin=origin,
                connection_id=conn.id,
            ) from exc
        self._say_retried(conn, request, attempt, exc.message)

    def _repeat_after_408(
        self, conn: Pooled, request: Request, response: Response, attempt: int
    ) -> bool:
        """Whether ``response`` is an unsolicited 408 to repeat ``request``
        after (the caller closes it and sends the request again on a fresh
        connection), having said so with ``RequestRetried``.

        Servers (Node, Apache and others) answer 408 Request Timeout on an
        idle connection they are about to close; a request sent just then
        gets it. RFC 9110 section 15.5.9: the server did not receive a
        complete request, and the client may repeat it, so any request
        whose body can be sent again is, idempotent or not, once per
        retry (``retries``). A 408 on a fresh connection, where the request
        itself was too slow, is the caller's answer.
        """
        if response.status != 408 or not conn.reused or not request.is_replayable:
            return False
        if attempt >= self._retries:
            return False
        self._pool.learn_race(conn)  # an idle timer, firing just then
        error = "the server answered 408 Request Timeout on a reused connection"
        self._say_retried(conn, request, attempt, error)
        return True

    def _say_retried(self, conn: Pooled, request: Request, attempt: int, error: str) -> None:
        """``RequestRetried``: ``request`` goes out again after ``error`` on ``conn``."""
        if self._emitter.enabled:
            self._emitter.emit(
                RequestRetried(
                    connection_id=conn.id,
                    origin=str(conn.route.origin),
                    time=now(),
                    method=request.method,
                    url=request.url_text,
                    attempt=attempt + 1,
                    error=error,
                )
            )

    def _say_sent(self, conn: ConnectionCore) -> None:
        """``RequestSent``: the request ``conn`` has just written, read back
        from the bytes written (h11 puts Host first, whatever the order
        given); credentials in it are hidden (``_hide_secret``). Called
        only when ``exchange_events`` is on."""
        if not self._emitter.enabled:
            return
        lines = conn.request_head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        fields = (line.partition(":") for line in lines[1:] if line)
        self._emitter.emit(
            RequestSent(
                connection_id=conn.id,
                origin=conn.origin_str,
                time=now(),
                method=method,
                target=rest.rpartition(" ")[0],
                headers=tuple(
                    (name, _hide_secret(name, value.strip())) for name, _, value in fields
                ),
            )
        )

    def _say_head(self, conn: ConnectionCore, head: Head) -> None:
        """``ResponseReceived``: the final head ``conn`` has just read.
        Called only when ``exchange_events`` is on."""
        if self._emitter.enabled:
            self._emitter.emit(
                ResponseReceived(
                    connection_id=conn.id,
                    origin=conn.origin_str,
                    time=now(),
                    http_version=head.http_version,
                    status=head.status,
                    reason=head.reason,
                    headers=tuple(
                        (name.decode("latin-1"), value.decode("latin-1"))
                        for name, value in head.raw_headers
                    ),
                )
            )

    def _why_not_retry(self, request: Request, attempt: int) -> str | None:
        if not request.is_idempotent:
            return f"{request.method} is not idempotent"
        if not request.is_replayable:
            return "the body can't be sent again"
        if attempt >= self._retries:
            return f"retries={self._retries} spent"
        return None


def _hide_secret(name: str, value: str) -> str:
    """A header value fit for an event: credentials become ``***`` (the
    scheme stays: ``Basic ***``), as userinfo does in URLs; events reach
    logs and trace files."""
    if name.lower() in ("authorization", "proxy-authorization"):
        scheme, space, _ = value.partition(" ")
        return f"{scheme} ***" if space else "***"
    return value


def _pool_limits(
    max_connections: int | None,
    max_connections_per_host: int | None,
    idle_timeout: float | None,
    max_requests_per_connection: int | None,
    max_connection_age: float | None,
) -> PoolLimits:
    """The pool options, checked."""
    return PoolLimits(
        max_connections=_limit("max_connections", max_connections),
        max_connections_per_host=_limit("max_connections_per_host", max_connections_per_host),
        rules=ExpiryRules(
            check_seconds("idle_timeout", idle_timeout),
            _limit("max_requests_per_connection", max_requests_per_connection),
            check_seconds("max_connection_age", max_connection_age),
        ),
    )


def _flag(name: str, value: bool) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {value!r}")
    return value


def _count(name: str, value: int, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _limit(name: str, value: int | None, minimum: int = 1) -> int | None:
    """An optional count: None (no limit) or an int of at least ``minimum``."""
    return None if value is None else _count(name, value, minimum=minimum)
