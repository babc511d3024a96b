"""Connection lifecycle events and their delivery.

Every change in a connection's life is an event: opened, reused, expired,
found stale, closed, and a request retried after the keep-alive race. Events
go to the client's ``on_event`` callback and, as one short line each, to the
``rawkeep`` logger at DEBUG level.

Each connection's life ends with exactly one of ``ConnectionExpired``
(retired by a keep-alive rule), ``StaleConnectionDiscarded`` (the server had
closed it while idle) or ``ConnectionClosed`` (every other reason). So for a
closed client, ``ConnectionOpened`` events equal those three put together.

Events are only built when someone listens (a callback is set or the logger
is enabled for DEBUG): the hot path of a reused connection pays one check.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, final

# At run time, not for typing only: typing.get_type_hints(ConnectionOpened)
# must find it (tools that read events' fields do). It imports no ssl.
from ._tls_details import TLSDetails  # noqa: TC001

__all__ = [
    "CloseReason",
    "ConnectionClosed",
    "ConnectionExpired",
    "ConnectionOpened",
    "ConnectionReused",
    "Emitter",
    "Event",
    "EventCallback",
    "Evidence",
    "ExpiryReason",
    "IdleLimitLearned",
    "RequestRetried",
    "RequestSent",
    "ResponseReceived",
    "StaleConnectionDiscarded",
    "info_logger",
]

if TYPE_CHECKING:
    import logging

#: DEBUG is logging's level 10; named here so that logging is not imported.
_DEBUG: Final = 10


def _logger() -> logging.Logger | None:
    """The ``rawkeep`` logger, or None while ``logging`` is not imported.

    Nobody can have turned DEBUG on without importing ``logging``, so a
    program that never does saves its import time (a few milliseconds).
    Once found, the logger is kept: ``getLogger`` takes logging's lock.
    """
    if _found:
        return _found[0]
    logging = sys.modules.get("logging")
    if logging is None:
        return None
    _found.append(logging.getLogger("rawkeep"))
    return _found[0]


# The process-wide "rawkeep" logger once logging is imported (loggers are
# process-wide by nature; nothing client-specific is kept here).
_found: list[logging.Logger] = []


#: Why a connection was retired by a keep-alive rule.
ExpiryReason: TypeAlias = Literal[
    "idle_timeout",  # idle longer than the client's idle_timeout
    # the server's Keep-Alive timeout or max would be passed, or the idle
    # limit learned from its closes when it announces none (IdleLimitLearned)
    "server_keep_alive",
    "max_requests",  # served max_requests_per_connection responses
    "max_age",  # older than max_connection_age
]

#: How a connection showed the server's idle limit (see ``_learned``).
Evidence: TypeAlias = Literal["fin", "probe", "race", "kept_longer"]

#: Why a connection was closed, other than expiry or staleness.
CloseReason: TypeAlias = Literal[
    "client_closed",  # Client.close()
    "connection_close",  # "Connection: close" in the request or the response
    "http_1_0",  # the response was HTTP/1.0, which is never reused
    "error",  # an I/O, timeout or protocol failure on it
    "unread_body",  # a streamed response was closed with too much body left
    "pool_full",  # idle, evicted to make room for another origin's connection
    "early_response",  # the server answered before the request body was all sent
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base class of all lifecycle events.

    Attributes:
        connection_id: the connection's id, unique within one client.
        origin: e.g. ``"http://127.0.0.1:8080"``.
        time: when it happened, wall-clock seconds since the epoch.
    """

    connection_id: int
    origin: str
    time: float

    def to_dict(self) -> dict[str, Any]:
        """The event as plain data, with its type under ``"event"``."""
        return {"event": type(self).__name__, **asdict(self)}


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionOpened(Event):
    """A new connection was established (TCP, plus TLS for https).

    Attributes:
        tls_version: e.g. ``"TLSv1.3"``, or ``None`` for plain http.
        connect_time: seconds spent connecting, handshake included.
        tls: what the TLS handshake agreed (version, cipher, ALPN) and the
            server's certificate (subject, issuer, names, dates) when it
            was verified; ``None`` for plain http.
    """

    tls_version: str | None
    connect_time: float
    tls: TLSDetails | None = None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionReused(Event):
    """An idle connection passed its checks and carries the next request.

    Attributes:
        idle_for: seconds it sat idle in the pool.
        responses: responses it had served before this request.
    """

    idle_for: float
    responses: int


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionExpired(Event):
    """A connection was retired by a keep-alive rule and closed.

    Attributes:
        reason: which rule, see ``ExpiryReason``.
    """

    reason: ExpiryReason


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class StaleConnectionDiscarded(Event):
    """An idle connection was found closed by the server (or holding bytes
    nobody asked for) when about to be reused, and was closed unused."""


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(Event):
    """A connection was closed for a reason other than expiry or staleness.

    Attributes:
        reason: see ``CloseReason``.
    """

    reason: CloseReason


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RequestRetried(Event):
    """A request failed on a reused connection before any response byte
    arrived (the keep-alive race) and is sent again on a new connection.

    ``connection_id`` is the connection that failed.

    Attributes:
        method: the request method.
        url: the URL, without credentials.
        attempt: 1 for the first retry, 2 for the second...
        error: the failure, in words.
    """

    method: str
    url: str
    attempt: int
    error: str


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class IdleLimitLearned(Event):
    """A connection showed how long the server keeps idle connections, and
    what the pool knows of it changed (see ``rawkeep._learned``).

    ``connection_id`` is the connection that showed it.

    Attributes:
        idle_limit: the idle limit now assumed, in seconds (retired before
            it, like an announced ``Keep-Alive: timeout``); None when it is
            forgotten (a connection lived clearly longer).
        evidence: ``"fin"`` (the server's close, timed by the kernel),
            ``"probe"`` (a close found by the stale probe: at most this
            long), ``"race"`` (a request met the close on its way) or
            ``"kept_longer"``.
        idle_for: how long the connection had been idle when it showed it.
    """

    idle_limit: float | None
    evidence: Evidence
    idle_for: float


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RequestSent(Event):
    """A request was written on a connection, head and body.

    Sent once per attempt: a redirect's request and a request sent again
    after the keep-alive race each have their own.

    Attributes:
        method: the request method.
        target: the request target as written (``/path?query``, or the
            absolute URL through a forward proxy).
        headers: the header fields as written, in order, names as sent.
    """

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived(Event):
    """The head of a final (non-1xx) response arrived; its body may follow.

    Attributes:
        http_version: as the status line said, e.g. ``"HTTP/1.1"``.
        status: the status code.
        reason: the reason phrase.
        headers: the header fields, in order, names as received.
    """

    http_version: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]


#: The signature of ``on_event``.
EventCallback: TypeAlias = Callable[[Event], None]


class Emitter:
    """Delivers events to a callback and to the ``rawkeep`` logger.

    A callback that raises does not break the request that triggered it
    (the event is reported from the middle of pool bookkeeping, where an
    exception would leave the pool inconsistent); its exception is logged
    at ERROR on the ``rawkeep`` logger instead.
    """

    __slots__ = ("_callback",)

    def __init__(self, callback: EventCallback | None) -> None:
        self._callback = callback

    @property
    def enabled(self) -> bool:
        """Whether anyone listens; callers skip building events otherwise."""
        if self._callback is not None:
            return True
        if not _found and "logging" not in sys.modules:
            return False  # nobody can have turned DEBUG on (see _logger)
        logger = _logger()
        return logger is not None and logger.isEnabledFor(_DEBUG)

    def emit(self, event: Event) -> None:
        logger = _logger()
        if logger is not None and logger.isEnabledFor(_DEBUG):
            logger.debug("%s", describe(event))
        if self._callback is not None:
            try:
                self._callback(event)
            except Exception:
                import logging

                logging.getLogger("rawkeep").exception("on_event callback raised on %r", event)


def now() -> float:
    """The timestamp put in events."""
    return time.time()


def describe(event: Event) -> str:
    """One short, stable log line for an event."""
    head = f"{type(event).__name__} #{event.connection_id} {event.origin}"
    if isinstance(event, ConnectionOpened):
        tls = f" {event.tls_version}" if event.tls_version else ""
        if event.tls is not None:
            tls = f" {event.tls.version} {event.tls.cipher}"
            tls += "" if event.tls.verified else " unverified"
        return f"{head}{tls} in {event.connect_time * 1000:.1f} ms"
    if isinstance(event, ConnectionReused):
        return f"{head} idle {event.idle_for:.3f} s, {event.responses} served"
    if isinstance(event, ConnectionExpired | ConnectionClosed):
        return f"{head} reason={event.reason}"
    if isinstance(event, IdleLimitLearned):
        limit = "forgotten" if event.idle_limit is None else f"{event.idle_limit:.3f} s"
        return f"{head} idle limit {limit} ({event.evidence}, idle {event.idle_for:.3f} s)"
    if isinstance(event, RequestSent):
        return f"{head} {event.method} {event.target}"
    if isinstance(event, ResponseReceived):
        return f"{head} {event.http_version} {event.status}"
    if isinstance(event, RequestRetried):
        error = " ".join(event.error.split())  # one line, whatever the error text
        return f"{head} {event.method} {event.url} attempt {event.attempt}: {error}"
    return head


#: INFO is logging's level 20 (see _DEBUG).
_INFO: Final = 20


def info_logger() -> logging.Logger | None:
    """The ``rawkeep`` logger if it is enabled for INFO (the line per
    response, see ``Response._from_head``), else None.

    On the path of every response: in a program that never imported
    ``logging`` it costs two look-ups and no call; else one ``isEnabledFor``
    (a look-up in logging's cache).
    """
    if _found:
        logger: logging.Logger | None = _found[0]
    elif "logging" not in sys.modules:
        return None  # nobody can have turned INFO on (see _logger)
    else:
        logger = _logger()
    if logger is None or not logger.isEnabledFor(_INFO):
        return None
    return logger
