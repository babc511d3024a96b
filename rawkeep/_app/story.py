"""The connection story told by ``rawkeep -v`` and the demo, the ``--trace``
file, and the download progress bar.

``Story`` turns each lifecycle event into one plain line ("* reusing
connection #0 (idle 0.2 s, response 3 on it)"); it is an ``on_event``
callback, so what it prints is exactly what the pool did.
"""

from __future__ import annotations

import json
import time
from typing import IO, TYPE_CHECKING, Final

from .._events import (
    ConnectionClosed,
    ConnectionExpired,
    ConnectionOpened,
    ConnectionReused,
    Event,
    IdleLimitLearned,
    RequestRetried,
    RequestSent,
    ResponseReceived,
    StaleConnectionDiscarded,
)
from .._headers import parse_keep_alive
from .._url import URL

if TYPE_CHECKING:
    from .._client import Client
    from .._models import Response
    from .._tls_details import TLSDetails

__all__ = ["Progress", "Story", "Trace", "duration", "tls_lines"]

#: Bodies at least this large (bytes, announced or received so far) get a
#: progress bar on a terminal; smaller ones are done before a bar helps.
PROGRESS_THRESHOLD: Final = 4 * 1024 * 1024
#: Seconds between progress bar redraws.
PROGRESS_INTERVAL: Final = 0.1

_CLOSE_WORDS: Final = {
    "client_closed": "the client was closed",
    "connection_close": "Connection: close, no more requests on it",
    "http_1_0": "the response was HTTP/1.0, which is never reused",
    "error": "after an error on it",
    "unread_body": "its response was closed with body left unread",
    "pool_full": "evicted to make room (pool full)",
    "early_response": "the server answered before the request body was all sent",
}

#: Response headers that decide a connection's fate; -v shows them.
_FATE_HEADERS: Final = ("connection", "keep-alive", "content-length", "transfer-encoding")


def duration(seconds: float) -> str:
    """``0.4 ms`` under a second, ``1.5 s`` from there."""
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.1f} s"


class Story:
    """Tells a client's connection story, one plain line per step.

    Pass it as the client's ``on_event``, and call ``request``, ``response``
    and ``body_done`` around each exchange (one thread).

    With ``exchange=True`` the client must be made with
    ``exchange_events=True``: each request is told from its ``RequestSent``
    (the request line and every header as written) and each response head
    from its ``ResponseReceived`` (every header), so a redirect's hops and
    a retry read in the order they happened. Without it (the demo), the
    request line waits for the event that says which connection carries
    it, and the final head is told by ``response`` with only the headers
    that decide the connection's fate.

    Args:
        stream: where the lines go.
        indent: put before every line (the demo indents its stories).
        idle_timeout: the client's, named when a connection expires by it.
        exchange: tell requests and heads from the exchange events.
    """

    def __init__(
        self,
        stream: IO[str],
        *,
        indent: str = "",
        idle_timeout: float | None = 30.0,
        exchange: bool = False,
    ) -> None:
        self._stream: IO[str] | None = stream
        self._indent = indent
        self._idle_timeout = idle_timeout
        self._exchange = exchange
        self._pending: str | None = None  # request line not printed yet
        self._last: str | None = None  # request line printed last
        self._keep_alive: dict[int, str] = {}  # connection id -> its last Keep-Alive
        self._learned: dict[str, float] = {}  # origin -> idle limit learned
        self._closed: set[int] = set()
        self.requests = 0
        self.responses = 0
        self.retries = 0

    def say(self, line: str) -> None:
        if self._stream is None:
            return
        try:
            self._stream.write(f"{self._indent}{line}\n")
            self._stream.flush()
        except OSError:
            # Nobody reads any more (a closed pipe): go quiet rather than
            # fail every event from inside the client's bookkeeping.
            self._stream = None

    def request(self, method: str, url: str) -> None:
        """A request is about to be sent."""
        self.requests += 1
        if not self._exchange:
            self._pending = f"> {method} {URL(url).target} HTTP/1.1"

    def __call__(self, event: Event) -> None:
        if isinstance(event, RequestSent | ResponseReceived):
            self._tell_exchange(event)
            return
        if isinstance(event, IdleLimitLearned):
            if event.idle_limit is None:
                self._learned.pop(event.origin, None)
            else:
                self._learned[event.origin] = round(event.idle_limit, 3)
        if isinstance(event, RequestRetried):
            self.retries += 1
            self._pending = self._last  # the same request goes out again
        self.say(f"* {self.describe(event)}")
        if isinstance(event, ConnectionOpened) and event.tls is not None:
            for line in tls_lines(event.tls):
                self.say(f"* {line}")
        if isinstance(event, ConnectionOpened | ConnectionReused) and self._pending:
            self.say(self._pending)
            self._last, self._pending = self._pending, None
        elif isinstance(event, ConnectionClosed | ConnectionExpired):
            self._closed.add(event.connection_id)

    def _tell_exchange(self, event: RequestSent | ResponseReceived) -> None:
        """A request as written, or a head as read, with every header."""
        if isinstance(event, RequestSent):
            self.say(f"> {event.method} {event.target} HTTP/1.1")
            for name, value in event.headers:
                self.say(f"> {name}: {value}")
            return
        self.say(f"< {event.http_version} {event.status} {event.reason}".rstrip())
        for name, value in event.headers:
            self.say(f"< {name}: {value}")
            if name.lower() == "keep-alive":
                self._keep_alive[event.connection_id] = value

    def describe(self, event: Event) -> str:
        """The words for one event, without the leading ``* ``."""
        cid = event.connection_id
        if isinstance(event, ConnectionOpened):
            tls = f", {event.tls_version}" if event.tls_version else ""
            took = duration(event.connect_time)
            return f"connected to {event.origin} as connection #{cid} in {took}{tls}"
        if isinstance(event, ConnectionReused):
            return (
                f"reusing connection #{cid} (idle {duration(event.idle_for)},"
                f" response {event.responses + 1} on it)"
            )
        if isinstance(event, ConnectionExpired):
            return f"connection #{cid} retired: {self._expiry_words(event)}"
        if isinstance(event, StaleConnectionDiscarded):
            return f"stale connection #{cid} discarded (closed by the server while idle)"
        if isinstance(event, ConnectionClosed):
            return f"connection #{cid} closed: {_CLOSE_WORDS.get(event.reason, event.reason)}"
        if isinstance(event, RequestRetried):
            return (
                f"retrying {event.method} on a new connection"
                f" (attempt {event.attempt}; #{cid}: {event.error})"
            )
        if isinstance(event, IdleLimitLearned):
            return _learned_words(event)
        return type(event).__name__

    def _expiry_words(self, event: ConnectionExpired) -> str:
        if event.reason == "idle_timeout":
            limit = self._idle_timeout
            tail = "" if limit is None else f" ({limit:g} s)"
            return f"idle longer than the client's idle timeout{tail}"
        if event.reason == "max_requests":
            return "it served the most requests allowed per connection"
        if event.reason == "max_age":
            return "older than the maximum connection age"
        header = self._keep_alive.get(event.connection_id)
        if header is None:
            learned = self._learned.get(event.origin)
            if learned is not None:
                return f"near the idle limit learned from the server's closes ({learned:g} s)"
            return "the server's Keep-Alive limit"
        timeout, max_ = parse_keep_alive([header])
        if max_ == 0 or timeout is None:
            return f"server Keep-Alive max reached (Keep-Alive: {header})"
        return f"server Keep-Alive timeout {timeout:g} s is near (Keep-Alive: {header})"

    def response(self, response: Response) -> None:
        """The head of the final response arrived (redirects listed first)."""
        self.responses += 1 + len(response.history)
        if self._exchange:
            return  # told as it arrived, from ResponseReceived
        for hop in response.history:
            target = hop.headers.get("location", "?")
            self.say(f"< {hop.http_version} {hop.status} {hop.reason} -> redirect to {target}")
        self.say(f"< {response.http_version} {response.status} {response.reason}".rstrip())
        for name, value in response.headers.items():
            if name.lower() in _FATE_HEADERS:
                self.say(f"< {name}: {value}")
        keep_alive = response.headers.get("keep-alive")
        if keep_alive is not None:
            self._keep_alive[response.connection_id] = keep_alive

    def body_done(self, response: Response, size: int) -> None:
        """The whole body arrived; say whether the connection stays open."""
        cid = response.connection_id
        kept = "" if cid in self._closed else f"; connection #{cid} kept alive for reuse"
        self.say(f"* body done ({size} bytes){kept}")

    def summary(self, client: Client, elapsed: float) -> None:
        """The closing line: requests, connections opened, reuse, time."""
        stats = client.pool_stats()
        ratio = stats.reused / self.responses if self.responses else 0.0
        self.say(
            f"* summary: {_plural(self.requests, 'request')},"
            f" {_plural(stats.opened, 'connection')} opened,"
            f" {stats.reused} of {_plural(self.responses, 'response')} on a reused"
            f" connection (reuse ratio {ratio:.0%}), {_plural(self.retries, 'retry', 'retries')},"
            f" {duration(elapsed)} in all"
        )


def tls_lines(tls: TLSDetails) -> list[str]:
    """What a new TLS connection agreed, as curl -v says it (without the
    leading ``* ``): version and cipher, ALPN, the server certificate."""
    bits = "" if tls.cipher_bits is None else f" ({tls.cipher_bits} bits)"
    lines = [f"TLS connection using {tls.version} / {tls.cipher}{bits}"]
    if tls.alpn is not None:
        lines.append(f"ALPN: server accepted {tls.alpn}")
    if not tls.verified:
        # ssl parses a certificate only once it has verified it (_tls_details).
        return [*lines, "server certificate not verified: details not shown"]
    lines.append("Server certificate:")
    for label, value in (
        ("subject", tls.subject),
        ("start date", tls.not_before),
        ("expire date", tls.not_after),
        ("subjectAltName", ", ".join(tls.subject_alt_names) or None),
        ("issuer", tls.issuer),
    ):
        if value is not None:
            lines.append(f" {label}: {value}")
    lines.append(" certificate verified")
    return lines


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"


# -- fetching -------------------------------------------------------------------------------------


class Trace:
    """--trace: each event as one JSON object per line, flushed at once so
    ``tail -f`` follows it live. The client swallows exceptions raised by
    ``on_event``, so a write error is kept here and reported at the end."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self.error: OSError | None = None

    def __call__(self, event: Event) -> None:
        try:
            self._file.write(json.dumps(event.to_dict()) + "\n")
            self._file.flush()
        except OSError as exc:
            self.error = self.error or exc


class Progress:
    """A one-line progress bar on a terminal, shown past PROGRESS_THRESHOLD.

    Args:
        stream: a terminal.
        total: the announced body size (Content-Length), if any.
    """

    def __init__(self, stream: IO[str], total: int | None) -> None:
        self._stream = stream
        self._total = total
        self._started = self._drawn_at = time.monotonic()
        self._shown = False

    def update(self, received: int) -> None:
        now = time.monotonic()
        if now - self._drawn_at >= PROGRESS_INTERVAL and (
            self._shown or max(received, self._total or 0) >= PROGRESS_THRESHOLD
        ):
            self._draw(received, now)

    def end_line(self) -> None:
        """End a bar cut short (Ctrl-C), so the next message starts a line."""
        if self._shown:
            self._stream.write("\n")
            self._stream.flush()

    def finish(self, received: int) -> None:
        if self._shown:
            self._draw(received, time.monotonic())
            self._stream.write("\n")
            self._stream.flush()

    def _draw(self, received: int, now: float) -> None:
        self._shown = True
        self._drawn_at = now
        rate = received / max(now - self._started, 1e-6)
        line = f"{received / 2**20:8.1f} MiB"
        total = self._total
        if total:
            done = min(received / total, 1.0)
            line += f" / {total / 2**20:.1f} MiB [{'#' * int(done * 20):<20}] {done:4.0%}"
        line += f"  {rate / 2**20:.1f} MiB/s"
        if total and rate > 0 and received < total:
            line += f"  ETA {(total - received) / rate:.0f} s"
        # \r returns to the start of the line; ESC [K clears the rest of it.
        self._stream.write(f"\r{line}\x1b[K")
        self._stream.flush()


#: What each kind of evidence showed, in words.
_EVIDENCE_WORDS: Final = {
    "fin": "the kernel timed its close",
    "probe": "found closed by the probe",
    "race": "the close crossed a request",
    "kept_longer": "it carried a request",
}


def _learned_words(event: IdleLimitLearned) -> str:
    how = _EVIDENCE_WORDS.get(event.evidence, event.evidence)
    seen = f"connection #{event.connection_id} idle {duration(event.idle_for)}: {how}"
    if event.idle_limit is None:
        return f"{event.origin} keeps idle connections longer than learned ({seen}); forgotten"
    return f"{event.origin} closes idle connections after {duration(event.idle_limit)} ({seen})"
