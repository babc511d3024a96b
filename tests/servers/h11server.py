"""A *correct* HTTP/1.1 keep-alive server script, with knobs for each rule.

Requests are parsed by the scripted server (and cross-checked by h11, see
`scripted.validate_with_h11`); responses are written here by hand because h11
always writes HTTP/1.1 and the suite also needs HTTP/1.0 answers.

Default answer: 200 with the request's *token* as the body, the value of the
``X-Token`` header if there is one, else the request target. Tests give every
request a distinct token, so a body that comes back on the wrong request
(cross-talk between threads or a desynchronised connection) is detected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .scripted import MAX_WAIT, ScriptedServer, render_response

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable

    from .scripted import ConcurrencyGauge, ReceivedRequest, ServerConnection


@dataclass(frozen=True)
class Reply:
    """What a `respond` function returns for one request."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    chunked: bool = False
    #: Trailer fields after a chunked body.
    trailers: list[tuple[str, str]] = field(default_factory=list)
    #: Interim (1xx) responses, as sent, before the response.
    interim: bytes = b""


def token_of(request: ReceivedRequest) -> bytes:
    """The request's token: its X-Token header, else its target."""
    token = request.header("x-token")
    return token if token is not None else request.target.encode("ascii")


def echo_token(request: ReceivedRequest) -> Reply:
    return Reply(body=token_of(request))


def fixed_body(size: int, *, chunked: bool = False) -> Callable[[ReceivedRequest], Reply]:
    """A `respond` function answering every request with `size` bytes."""
    body = bytes(i % 251 for i in range(size))  # not all zeros: catches offsets

    def respond(request: ReceivedRequest) -> Reply:
        return Reply(body=body, chunked=chunked)

    return respond


@dataclass(frozen=True, kw_only=True)
class KeepAliveOptions:
    """Knobs of the keep-alive server; the defaults make a plain, patient one."""

    #: Builds the answer to each request.
    respond: Callable[[ReceivedRequest], Reply] = echo_token
    #: Sent as ``Keep-Alive: timeout=N`` on every response (not enforced:
    #: combine with `idle_close_after` for a server that also acts on it).
    keep_alive_timeout: int | None = None
    #: Sent as ``Keep-Alive: max=M-k`` on the k-th response (k from 0) of a
    #: connection, counting down as Apache does.
    keep_alive_max: int | None = None
    #: Silently close a connection idle for this many seconds after a
    #: response (what Node and uvicorn do after their 5 s keep-alive timeout).
    idle_close_after: float | None = None
    #: After this many responses on a connection, answer with
    #: ``Connection: close`` and close.
    max_requests_per_connection: int | None = None
    #: Every response carries ``Connection: close`` and the server closes.
    connection_close: bool = False
    #: Answer with an ``HTTP/1.0`` status line and close after the response.
    http10: bool = False
    #: With `http10`: add ``Connection: keep-alive`` and keep the socket open.
    http10_keep_alive: bool = False
    #: Seconds to wait before answering each request (to make requests of
    #: several threads overlap).
    response_delay: float = 0.0


def keepalive_handler(options: KeepAliveOptions) -> Callable[[ServerConnection], None]:
    """Build the connection script of a keep-alive server with `options`."""

    def handle(conn: ServerConnection) -> None:
        served = 0
        while True:
            # Like Node's keepAliveTimeout, the idle limit applies between
            # requests only: a fresh connection waits patiently for its first.
            idle_limit = options.idle_close_after if served else None
            if not conn.wait_readable(MAX_WAIT if idle_limit is None else idle_limit):
                return  # idle too long: the caller's finally closes (FIN)
            request = conn.read_request()
            if request is None:
                return  # the client closed the connection
            if options.response_delay and conn.sleep(options.response_delay):
                return
            served += 1
            data, close_after = _respond(options, request, served)
            conn.respond(data)
            if close_after:
                return

    return handle


def _respond(
    options: KeepAliveOptions, request: ReceivedRequest, served: int
) -> tuple[bytes, bool]:
    """Render the response to the `served`-th request; say whether to close."""
    reply = options.respond(request)
    headers = list(reply.headers)
    close_after = False
    client_close = any(
        value.strip().lower() == b"close" for value in request.header_all("connection")
    )
    limit = options.max_requests_per_connection
    if options.connection_close or client_close or (limit and served >= limit):
        headers.append(("Connection", "close"))
        close_after = True
    params = []
    if options.keep_alive_timeout is not None:
        params.append(f"timeout={options.keep_alive_timeout}")
    if options.keep_alive_max is not None:
        params.append(f"max={max(0, options.keep_alive_max - (served - 1))}")
    if params:
        headers.append(("Keep-Alive", ", ".join(params)))
    version = "1.1"
    if options.http10:
        version = "1.0"
        if options.http10_keep_alive and not close_after:
            headers.append(("Connection", "keep-alive"))
        else:
            close_after = True
    data = render_response(
        reply.status,
        reply.body,
        headers,
        http_version=version,
        chunked=reply.chunked,
        head=request.method == "HEAD",
        trailers=reply.trailers,
    )
    return reply.interim + data, close_after


def keepalive_server(
    *,
    ssl_context: ssl.SSLContext | None = None,
    open_gauge: ConcurrencyGauge | None = None,
    in_flight: ConcurrencyGauge | None = None,
    **knobs: object,
) -> ScriptedServer:
    """A (not yet started) `ScriptedServer` running the keep-alive script.

    `knobs` are the fields of `KeepAliveOptions`.
    """
    options = KeepAliveOptions(**knobs)  # type: ignore[arg-type]
    return ScriptedServer(
        keepalive_handler(options),
        ssl_context=ssl_context,
        open_gauge=open_gauge,
        in_flight=in_flight,
    )
