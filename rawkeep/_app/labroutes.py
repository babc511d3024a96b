"""What the lab server answers, path by path: functions of the request, no I/O.

The lab server (``labserver``) owns the sockets, the threads and the
keep-alive rules; this module only decides what one request gets back, as a
``Reply``. Keeping the two apart means the paths can be read (and tested) as
plain functions, and that waiting (``/slow``) and streaming (``/chunked``)
are done by the server, where ``stop()`` can interrupt them.

Paths (any method; a HEAD gets the head only), listed for ``rawkeep serve``
by ``PATHS``:

- ``/`` and any path not below: ``hello from connection C, request N``, the
  numbers counting connections of this server and requests on this one, so
  a body shows whether its connection was reused.
- ``/json``: a small JSON object with the same two numbers.
- ``/items?count=N``: a JSON list of N items (default 10).
- ``/echo``: the request as JSON: method, target, version, headers as sent
  (``"Name: value"``, in order), body.
- ``/status/CODE``: a response with that status (200 to 599).
- ``/redirect``: one redirect to ``/json``; ``/redirect/N``: a chain of N
  redirects ending at ``/json``; ``/redirect?to=URL&status=302``: one
  redirect to URL; ``/loop``: a redirect to itself, for ever.
- ``/slow?seconds=S``: the response after S seconds (default 1, at most 10).
- ``/chunked?chunks=N&pause=S``: a chunked body of N pieces, S seconds apart.
- ``/gzip``, ``/deflate``: a JSON body compressed with that
  ``Content-Encoding``; ``/gzip/PATH`` and ``/deflate/PATH``: the answer of
  ``/PATH`` (query included), compressed; ``/broken-gzip``: a body that says
  gzip and is not.
- ``/bytes/N``: N bytes of a repeating pattern, sent in 64 KiB pieces.

A query value that is not a number, or out of its range, gets a 400 that
says which.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl, urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    #: Header fields given to ``Reply.text`` or ``Reply.json``: a mapping, or pairs.
    HeaderFields = Mapping[str, str] | Iterable[tuple[str, str]]

__all__ = ["CODINGS", "PATHS", "ServerRequest", "Reply", "compress", "redirect_reply", "respond"]

#: Longest ``/slow`` wait, in seconds: a lab exercise, never a hang.
MAX_DELAY: Final = 10.0
#: Longest pause between ``/chunked`` pieces, in seconds.
MAX_PAUSE: Final = 2.0
#: Most pieces of a ``/chunked`` body.
MAX_CHUNKS: Final = 10_000
#: Most items of ``/items``.
MAX_ITEMS: Final = 100_000
#: Longest redirect chain of ``/redirect/N``.
MAX_REDIRECTS: Final = 100
#: Largest ``/bytes/N`` body (1 GiB: enough to watch a progress bar).
MAX_BYTES: Final = 1 << 30
#: Size of each piece of a ``/bytes/N`` body (64 KiB).
PIECE_SIZE: Final = 1 << 16
#: The ``/bytes`` pattern: every byte value in turn, so a lost or doubled
#: piece shows up as a wrong offset, not as identical zeros.
_PATTERN: Final = bytes(range(256)) * (PIECE_SIZE // 256)
_REDIRECT_STATUSES: Final = (301, 302, 303, 307, 308)
#: The codings the lab compresses with, and zlib's window bits for each:
#: gzip's wrapper, or the zlib format that ``deflate`` names (RFC 9110
#: section 8.4.1). zlib writes a gzip header with no time in it, so the same
#: body compresses to the same bytes every time.
CODINGS: Final = {"gzip": 31, "deflate": 15}
_TEXT: Final = ("Content-Type", "text/plain; charset=utf-8")
_JSON: Final = ("Content-Type", "application/json")


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerRequest:
    """One whole request as the server read it (a ``rawkeep.testing`` record)."""

    method: str
    #: The request target as sent, e.g. ``/items?count=3``.
    target: str
    #: ``"1.1"`` or ``"1.0"``.
    http_version: str
    #: Header fields as sent, their names' case kept.
    headers: tuple[tuple[str, str], ...]
    body: bytes
    #: The connection that carried it: 0 for the server's first.
    connection: int
    #: Its place on that connection: 1 for the first request.
    number: int

    @property
    def path(self) -> str:
        """The target's path, without its query: ``/items``."""
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        """The target's query as a dict (a repeated name keeps its last value)."""
        return dict(parse_qsl(urlsplit(self.target).query, keep_blank_values=True))

    def header(self, name: str) -> str | None:
        """The value of header ``name`` (any case), or None when it was not sent.

        A field sent more than once gives its values joined by ``", "``
        (RFC 9110 section 5.3).
        """
        wanted = name.lower()
        values = [value for field, value in self.headers if field.lower() == wanted]
        return ", ".join(values) if values else None

    def json(self) -> object:
        """The body parsed as JSON.

        Raises:
            ValueError: the body is not JSON (``json.JSONDecodeError``).
        """
        return json.loads(self.body)


@dataclass(frozen=True, kw_only=True, slots=True)
class Reply:
    """What to send back; the server adds framing and keep-alive headers."""

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    #: The body, written one piece at a time.
    body: tuple[bytes, ...] = ()
    #: No Content-Length: chunked to an HTTP/1.1 client, else until close.
    chunked: bool = False
    #: Seconds to wait before the head.
    delay: float = 0.0
    #: Seconds to wait between two pieces of the body.
    pause: float = 0.0
    #: Trailer fields after a chunked body (HTTP/1.1 only).
    trailers: tuple[tuple[str, str], ...] = ()
    #: Headers of a ``103 Early Hints`` sent before the head (HTTP/1.1 only).
    hints: tuple[tuple[str, str], ...] = ()

    @classmethod
    def text(cls, text: str, *, status: int = 200, headers: HeaderFields = ()) -> Reply:
        """A ``text/plain`` reply: ``text`` in UTF-8, then ``headers``."""
        fields = (_TEXT, *_pairs(headers))
        return cls(status=status, headers=fields, body=(text.encode(),))

    @classmethod
    def json(cls, value: object, *, status: int = 200, headers: HeaderFields = ()) -> Reply:
        """An ``application/json`` reply: ``value`` as JSON, then ``headers``.

        Raises:
            TypeError: ``value`` can't be written as JSON.
        """
        fields = (_JSON, *_pairs(headers))
        return cls(status=status, headers=fields, body=(json.dumps(value).encode(),))


def _pairs(headers: HeaderFields) -> tuple[tuple[str, str], ...]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return tuple((name, value) for name, value in items)


class _BadRequest(Exception):
    """A query value the path can't use; answered with a 400."""


def respond(request: ServerRequest) -> Reply:
    """The reply to ``request``, chosen by the first segment of its path."""
    parts = urlsplit(request.target)
    segments = parts.path.strip("/").split("/")
    query = dict(parse_qsl(parts.query))
    route = _ROUTES.get(segments[0], _hello)
    try:
        return route(request, segments[1:], query)
    except _BadRequest as exc:
        return _text(f"{exc}\n", status=400)


def _text(text: str, *, status: int = 200) -> Reply:
    return Reply.text(text, status=status)


def _json(value: object) -> Reply:
    return Reply(headers=(_JSON,), body=(json.dumps(value, indent=1).encode() + b"\n",))


def _number(text: str | None, name: str, default: float, high: float) -> float:
    """A query or path number from 0 to ``high``.

    Raises:
        _BadRequest: not a number, or out of range.
    """
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise _BadRequest(f"{name} must be a number, not {text!r}") from None
    if not 0 <= value <= high:
        raise _BadRequest(f"{name} must be from 0 to {high:g}, not {text}")
    return value


def _whole(text: str | None, name: str, default: int, high: int) -> int:
    value = _number(text, name, default, high)
    if value != int(value):
        raise _BadRequest(f"{name} must be a whole number, not {text}")
    return int(value)


def _segment(rest: list[str]) -> str | None:
    return rest[0] if rest and rest[0] else None


# -- the paths -----------------------------------------------------------------------------


def _hello(request: ServerRequest, rest: list[str], query: dict[str, str]) -> Reply:
    return _text(f"hello from connection {request.connection}, request {request.number}\n")


def _json_path(request: ServerRequest, rest: list[str], query: dict[str, str]) -> Reply:
    return _json({"connection": request.connection, "request": request.number})


def _items(request: ServerRequest, rest: list[str], query: dict[str, str]) -> Reply:
    count = _whole(query.get("count"), "count", 10, MAX_ITEMS)
    return _json([{"id": i, "name": f"item {i}"} for i in range(1, count + 1)])


def _echo(request: ServerRequest, rest: list[str], query: dict[str, str]) -> Reply:
    return _json(
        {
            "method": request.method,
            "target": request.target,
            "http_version": request.http_version,
            "headers": [f"{name}: {value}" for name, value in request.headers],
            "body": request.body.decode("utf-8", "replace"),
            "body_length": len(request.body),
        }
    )


def _status(request: ServerRequest, rest: list[str], query: dict[str, str]) -> Reply:
    # 1xx are not final responses; /status/100 would leave the client waiting.
    code = _whole(_segment(rest), "the status", 200, 599)
    if code < 200:
        raise _BadRequest(f"the status must be from 200 to 599, not {code}")
    if code in (204, 304):
        return Reply(status=code)  # these never have a body (RFC 9110 15.3.5, 15.4.5)
    return _text(f"status {code}\n", status=code)


def _redirect(request: ServerRequest, rest: list[str], query: dict[str, str]) -> Reply:
    if rest:
        hops = _whole(_segment(rest), "the number of redirects", 1, MAX_REDIRECTS)
        if hops < 1:
            raise _BadRequest("the number of redirects must be at least 1")
        location, status = ("/json" if hops == 1 else f"/redirect/{hops - 1}"), 302
    elif "to" not in query:
        location, status = "/json", 302
    else:
        location = query["to"]
        status = _whole(query.get("status"), "status", 302, 308)
        if status not in _REDIRECT_STATUSES:
            raise _BadRequest(f"status must be one of {_REDIRECT_STATUSES}, not {status}")
    return redirect_reply(location, status)


def redirect_reply(location: str, status: int) -> Reply:
    """A redirect to ``location`` with ``status``, and a line of text saying so."""
    return Reply(
        status=status,
        headers=(("Location", location), _TEXT),
        body=(f"redirecting to {location}\n".encode(),),
    )


def _loop(request: ServerRequest, rest: list[str], query: dict[str, str]) -> Reply:
    return redirect_reply("/loop", 302)


def _slow(request: ServerRequest, rest: list[str], query: dict[str, str]) -> Reply:
    seconds = _number(query.get("seconds"), "seconds", 1.0, MAX_DELAY)
    return replace(_text(f"waited {seconds:g} s\n"), delay=seconds)


def _chunked(request: ServerRequest, rest: list[str], query: dict[str, str]) -> Reply:
    count = _whole(query.get("chunks"), "chunks", 3, MAX_CHUNKS)
    pause = _number(query.get("pause"), "pause", 0.0, MAX_PAUSE)
    pieces = tuple(f"chunk {i} of {count}\n".encode() for i in range(1, count + 1))
    return Reply(headers=(_TEXT,), body=pieces, chunked=True, pause=pause)


def _lines(request: ServerRequest, rest: list[str], query: dict[str, str]) -> Reply:
    events = (b"event: tick\r\ndata: 1\r\n\r\n", b"event: tick\r\ndata: 2\r\n\r\n")
    return Reply(headers=(_TEXT,), body=events, chunked=True, trailers=(("X-Lines", "6"),))


def _hints(request: ServerRequest, rest: list[str], query: dict[str, str]) -> Reply:
    page = b"<!doctype html><link rel=stylesheet href=/style.css><p>hello</p>\n"
    return Reply(
        headers=(("Content-Type", "text/html"),),
        body=(page,),
        hints=(("Link", "</style.css>; rel=preload; as=style"),),
    )


def _compressed(request: ServerRequest, rest: list[str], query: dict[str, str]) -> Reply:
    """``/gzip``, ``/deflate``: a JSON document, or the answer of the rest of
    the path, compressed with the coding the first segment names."""
    coding = urlsplit(request.target).path.strip("/").split("/")[0]
    if rest and rest[0]:
        inner = request.target.split("/", 2)[2]  # "/gzip/items?count=3" -> "items?count=3"
        return compress(respond(replace(request, target="/" + inner)), coding)
    flag = "gzipped" if coding == "gzip" else "deflated"
    document = {flag: True, "connection": request.connection, "request": request.number}
    return compress(_json(document), coding)


def _broken_gzip(request: ServerRequest, rest: list[str], query: dict[str, str]) -> Reply:
    return Reply(headers=(_TEXT, ("Content-Encoding", "gzip")), body=(b"this is not gzip data\n",))


def compress(reply: Reply, coding: str) -> Reply:
    """``reply`` with its body compressed with ``coding`` (a key of ``CODINGS``).

    Each piece is compressed as it comes, so a large body is never joined;
    a chunked body is flushed after each piece, so that each chunk can be
    decoded as it arrives.
    """
    compressor = zlib.compressobj(wbits=CODINGS[coding])
    flush = zlib.Z_SYNC_FLUSH if reply.chunked else zlib.Z_NO_FLUSH
    pieces = [compressor.compress(piece) + compressor.flush(flush) for piece in reply.body]
    pieces.append(compressor.flush())
    return replace(
        reply,
        headers=(*reply.headers, ("Content-Encoding", coding)),
        body=tuple(piece for piece in pieces if piece),
    )


def _bytes(request: ServerRequest, rest: list[str], query: dict[str, str]) -> Reply:
    size = _whole(_segment(rest), "the size", 0, MAX_BYTES)
    full, last = divmod(size, PIECE_SIZE)
    pieces = (_PATTERN,) * full + ((_PATTERN[:last],) if last else ())
    return Reply(headers=(("Content-Type", "application/octet-stream"),), body=pieces)


_ROUTES: Final[dict[str, Callable[[ServerRequest, list[str], dict[str, str]], Reply]]] = {
    "json": _json_path,
    "items": _items,
    "echo": _echo,
    "status": _status,
    "redirect": _redirect,
    "slow": _slow,
    "chunked": _chunked,
    "lines": _lines,
    "hints": _hints,
    "gzip": _compressed,
    "deflate": _compressed,
    "broken-gzip": _broken_gzip,
    "loop": _loop,
    "bytes": _bytes,
}

#: What ``rawkeep serve`` prints it serves: (path, what it answers).
PATHS: Final = (
    ("/", "hello from connection C, request N (any path not below)"),
    ("/json", "the same two numbers as JSON"),
    ("/items?count=N", "a JSON list of N items (default 10)"),
    ("/echo", "the request as JSON: method, target, headers, body"),
    ("/status/CODE", "that status (200 to 599)"),
    ("/redirect", "302 to /json; /redirect/N: N redirects; /redirect?to=URL&status=307"),
    ("/loop", "a redirect to itself, for ever"),
    ("/slow?seconds=S", "the answer after S seconds (default 1)"),
    ("/chunked?chunks=N&pause=S", "a chunked body of N pieces, S seconds apart"),
    ("/lines", "server-sent-event lines, chunked, then a trailer field (X-Lines)"),
    ("/hints", "103 Early Hints (a Link header), then an HTML page"),
    ("/gzip, /deflate", "compressed JSON; /gzip/PATH: the answer of /PATH, compressed"),
    ("/broken-gzip", "a body that says gzip and is not"),
    ("/bytes/N", "N bytes, in 64 KiB pieces"),
)
