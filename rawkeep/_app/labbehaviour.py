"""The lab server's knobs: how it treats connections and shapes its answers.

A ``Behaviour`` is frozen and shared by every connection of one server. Two
kinds of knob live in it:

- connection knobs, asked by ``LabConnection`` after each response: how long
  an idle connection is kept, how many requests it carries, whether the
  server announces either in a ``Keep-Alive`` header, HTTP/1.0 or
  ``Connection: close`` answers, and a deliberate hang-up (the keep-alive
  race);
- answer knobs, applied by ``reply`` to whatever the path (``labroutes``)
  answered: a delay before every head, chunked framing, compression when the
  client accepts it, and a chain of redirects before the real answer.

``rawkeep serve`` builds one from its options (``serve``); the demo and the
tests build theirs directly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from .labroutes import CODINGS, compress, redirect_reply, respond

if TYPE_CHECKING:
    from collections.abc import Callable

    from .labroutes import Reply, ServerRequest

__all__ = ["MAX_IDLE", "Behaviour"]

#: Longest a patient server keeps an idle connection (bounded, not forever).
MAX_IDLE: Final = 30.0
#: The query parameter that counts the hops of the ``redirects`` knob.
HOP: Final = "hop"
#: Statuses whose responses never have a body (RFC 9110 sections 15.3.5, 15.4.5).
_NO_BODY: Final = (204, 304)


@dataclass(frozen=True, kw_only=True)
class Behaviour:
    """How the lab server treats its connections; defaults: patient keep-alive.

    Raises:
        ValueError: a count below 1 or a time below 0, or an unknown coding.
    """

    #: Sent as ``Keep-Alive: timeout=N`` and enforced: idle N s, then close.
    keep_alive_timeout: int | None = None
    #: Requests a connection may carry; each response says how many more
    #: remain as ``Keep-Alive: max=M`` (Apache's count), then it closes.
    keep_alive_max: int | None = None
    #: Answer every request with ``Connection: close`` and close.
    connection_close: bool = False
    #: Answer the n-th request of each connection with ``Connection: close``
    #: and close: a server's per-connection request limit, announced as it ends.
    close_after: int | None = None
    #: Close a connection idle this many seconds, without any header saying so.
    drop_idle_after: float | None = None
    #: Read the n-th request of each connection, then close without answering:
    #: the keep-alive race, made deterministic.
    hang_up_on_request: int | None = None
    #: Answer as an HTTP/1.0 server does: that status line, and the
    #: connection closed after each response.
    http_version: Literal["1.1", "1.0"] = "1.1"
    #: Seconds to wait before every response's head (on top of ``/slow``).
    delay: float = 0.0
    #: Send every body without ``Content-Length``: chunked in HTTP/1.1.
    chunked: bool = False
    #: Compress every body with this coding when the request's
    #: ``Accept-Encoding`` accepts it (a body already encoded is left alone).
    compress: Literal["gzip", "deflate"] | None = None
    #: Answer every request first with this many 302s, each to the same
    #: target with ``hop=K`` in its query, then as its path says.
    redirects: int = 0

    def __post_init__(self) -> None:
        counts = (self.keep_alive_timeout, self.keep_alive_max, self.close_after)
        if any(count is not None and count < 1 for count in (*counts, self.hang_up_on_request)):
            raise ValueError("counts and keep-alive timeouts must be at least 1")
        if self.drop_idle_after is not None and self.drop_idle_after < 0:
            raise ValueError("drop_idle_after must be at least 0")
        if self.delay < 0 or self.redirects < 0:
            raise ValueError("delay and redirects must be at least 0")
        if self.compress is not None and self.compress not in CODINGS:
            raise ValueError(f"compress must be one of {', '.join(CODINGS)}")

    def idle_limit(self) -> float:
        """Seconds an idle connection is kept."""
        limits = (self.keep_alive_timeout, self.drop_idle_after)
        return min((limit for limit in limits if limit is not None), default=MAX_IDLE)

    def is_last(self, number: int) -> bool:
        """Whether the ``number``-th response of a connection is its last."""
        return (
            self.connection_close
            or self.http_version == "1.0"
            or number == self.close_after
            or (self.keep_alive_max is not None and number >= self.keep_alive_max)
        )

    def headers(self, number: int) -> list[tuple[str, str]]:
        """The connection headers of the ``number``-th response.

        The last response by ``keep_alive_max`` says only ``max=0``, as the
        demo shows; an HTTP/1.0 answer ends without a header, as HTTP/1.0
        connections do.
        """
        headers = []
        if self.connection_close or number == self.close_after:
            headers.append(("Connection", "close"))
        params = []
        if self.keep_alive_timeout is not None:
            params.append(f"timeout={self.keep_alive_timeout}")
        if self.keep_alive_max is not None:
            params.append(f"max={self.keep_alive_max - number}")
        if params and self.http_version == "1.1":
            headers.append(("Keep-Alive", ", ".join(params)))
        return headers

    def reply(
        self, request: ServerRequest, responder: Callable[[ServerRequest], Reply] = respond
    ) -> Reply:
        """The answer to ``request``, shaped by the answer knobs.

        Args:
            request: the request read.
            responder: what answers it: the lab's paths, or a test's handler.
        """
        redirect = self._redirect(request)
        reply = responder(request) if redirect is None else redirect
        if self.delay:
            reply = replace(reply, delay=reply.delay + self.delay)
        if self.chunked:
            reply = replace(reply, chunked=True)
        if self.compress is not None and _may_compress(request, reply, self.compress):
            reply = compress(reply, self.compress)
        return reply

    def _redirect(self, request: ServerRequest) -> Reply | None:
        """A 302 to the next hop, while the request has hops to go."""
        if not self.redirects:
            return None
        parts = urlsplit(request.target)
        query = [(name, value) for name, value in parse_qsl(parts.query) if name != HOP]
        hop = dict(parse_qsl(parts.query)).get(HOP, "0")
        done = int(hop) if hop.isdigit() else 0
        if done >= self.redirects:
            return None
        location = f"{parts.path}?{urlencode([*query, (HOP, str(done + 1))])}"
        return redirect_reply(location, 302)


def _may_compress(request: ServerRequest, reply: Reply, coding: str) -> bool:
    """Whether the client accepts ``coding`` and the reply has a body to compress."""
    if reply.status in _NO_BODY or not reply.body:
        return False
    if any(name.lower() == "content-encoding" for name, _ in reply.headers):
        return False
    return coding in accepted_codings(request)


def accepted_codings(request: ServerRequest) -> set[str]:
    """The codings the request's ``Accept-Encoding`` accepts (not ``q=0``)."""
    accepted = set()
    for name, value in request.headers:
        if name.lower() != "accept-encoding":
            continue
        for item in value.split(","):
            token, *params = (part.strip().lower() for part in item.split(";"))
            if token and not any(_is_q_zero(param) for param in params):
                accepted.add(token)
    return accepted


def _is_q_zero(param: str) -> bool:
    """Whether an ``Accept-Encoding`` parameter is ``q=0`` ("not acceptable")."""
    name, _, value = param.partition("=")
    try:
        return name.strip() == "q" and float(value) == 0
    except ValueError:
        return False
