"""The errors rawkeep raises, all under one root.

Nothing from the layers below (``OSError``, ``socket.timeout``,
``ssl.SSLError``, ``h11.ProtocolError``) escapes a public call: each boundary
translates what it catches into one of these, chained with ``raise ... from``.

The tree::

    RawkeepError
    ├── InvalidURL            the URL can't be used (scheme, host, port, characters)
    ├── ClientClosed          the client was closed before the request
    ├── ConnectError          TCP connect failed (refused, unreachable, DNS)
    ├── TLSError              handshake or certificate verification failed
    ├── ProxyError            the proxy is unreachable, refused the tunnel or
    │                         wants credentials
    ├── TimeoutError          any of the four timeouts below
    │   ├── ConnectTimeout    TCP connect + TLS handshake took too long
    │   ├── ReadTimeout       no byte of the response arrived in time
    │   ├── WriteTimeout      the peer did not accept request bytes in time
    │   └── PoolTimeout       no connection became free in time
    ├── RemoteProtocolError   the server broke HTTP: malformed or truncated
    │                         response, closed or reset mid-exchange
    ├── LocalProtocolError    the request can't be sent as valid HTTP/1.1
    ├── TooManyRedirects      more redirects than max_redirects
    ├── DecodingError         a Content-Encoding could not be decoded
    └── HTTPStatusError       raise_for_status() on a 4xx or 5xx response
                              (defined beside Response, in _models)

``rawkeep.TimeoutError`` shadows the builtin of the same name inside this
package; import it qualified (``rawkeep.TimeoutError``).
"""

from __future__ import annotations

__all__ = [
    "ClientClosed",
    "with_context",
    "ConnectError",
    "ConnectTimeout",
    "DecodingError",
    "InvalidURL",
    "LocalProtocolError",
    "PoolTimeout",
    "ProxyError",
    "RawkeepError",
    "ReadTimeout",
    "RemoteProtocolError",
    "TLSError",
    "TimeoutError",
    "TooManyRedirects",
    "WriteTimeout",
]


class RawkeepError(Exception):
    """Base class of every error rawkeep raises.

    Args:
        message: what went wrong, in words. Never contains credentials.
        origin: the origin (``"http://host:port"``) involved, when known.
        connection_id: the id of the connection involved, when there was one.
    """

    def __init__(
        self,
        message: str,
        *,
        origin: str | None = None,
        connection_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.origin = origin
        self.connection_id = connection_id
        # Pickling needs nothing more: BaseException.__reduce__ replays the
        # message through __init__ and restores these attributes from
        # __dict__ (tested in tests/unit/test_exceptions.py).


class InvalidURL(RawkeepError):
    """The URL can't be used: unsupported scheme, empty or malformed host,
    bad port, or whitespace / control characters. Raised before any I/O."""


class ClientClosed(RawkeepError):
    """A request was made on a ``Client`` after ``close()``. Raised before
    any I/O; requests already in flight when ``close()`` ran finish normally."""


class ConnectError(RawkeepError):
    """The TCP connection could not be opened: refused, unreachable, or the
    host name did not resolve. Not raised for a timeout (``ConnectTimeout``),
    nor for a proxy that can't be reached (``ProxyError``)."""


class TLSError(RawkeepError):
    """The TLS handshake failed, most often because the server's certificate
    did not verify against the trust store or did not match the host name."""


class ProxyError(RawkeepError):
    """The proxy refused the request or failed to reach the target.

    Raised when the proxy can't be reached (refused, unreachable, its name
    does not resolve: the message starts ``could not connect to proxy``;
    a connect to it that times out is a ``ConnectTimeout``), when a
    ``CONNECT`` tunnel is refused (any non-2xx status) or broken, and when
    a proxy answers 407 (authentication required).

    Attributes:
        status: the proxy's status code, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        origin: str | None = None,
        connection_id: int | None = None,
    ) -> None:
        super().__init__(message, origin=origin, connection_id=connection_id)
        self.status = status


class TimeoutError(RawkeepError):
    """Base class of the four timeouts; catch it to handle any of them."""


class ConnectTimeout(TimeoutError):
    """TCP connect plus TLS handshake did not finish within ``connect``."""


class ReadTimeout(TimeoutError):
    """No byte of the response arrived within ``read`` seconds of waiting.

    A read timeout is never retried: the server may still be working on the
    request, so sending it again could do the work twice.
    """


class WriteTimeout(TimeoutError):
    """The server did not accept request bytes within ``write`` seconds."""


class PoolTimeout(TimeoutError):
    """The pool limits were reached and no connection freed up within
    ``pool`` seconds."""


class RemoteProtocolError(RawkeepError):
    """The server broke the HTTP exchange.

    Raised for a malformed response (bad status line, header block too large,
    bad framing), a truncated body, and a connection closed or reset by the
    peer before the response was complete. When this happens on a reused
    connection before any byte of the response arrived, the request is
    retried instead if it is safe to (see docs/retries.md); the error is
    raised only once the retries are spent or the request is not idempotent.
    """


class LocalProtocolError(RawkeepError):
    """The request can't be sent as valid HTTP/1.1: a CR, LF or NUL in a
    header, a malformed header name or method, conflicting framing headers,
    a 307/308 redirect whose body can't be sent again.

    Raised before any byte of the request is sent, with one exception: a
    streamed body (iterator or file) that turns out longer or shorter than
    the Content-Length the caller declared is only found out while sending;
    the connection is then closed, never reused.
    """


class TooManyRedirects(RawkeepError):
    """More than ``max_redirects`` redirects were followed."""


class DecodingError(RawkeepError):
    """The response body could not be decoded per its Content-Encoding."""


def with_context(
    exc: RawkeepError, *, origin: str | None, connection_id: int | None = None
) -> RawkeepError:
    """The one boundary helper that gives an error its context: the origin
    and connection an error raised below them (in a socket read, in the
    parser) was about, where the layer that raised it could not know them.
    What the error already says is kept. Returns ``exc``, to re-raise.
    """
    if exc.origin is None:
        exc.origin = origin
    if exc.connection_id is None:
        exc.connection_id = connection_id
    return exc
