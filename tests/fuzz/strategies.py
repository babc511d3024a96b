"""Hypothesis strategies: valid HTTP/1.1 responses, and byte-level mutations.

`responses()` builds a response *and* what a correct client must make of
it: the status, reason and headers as sent, the body after framing and
content-coding are undone, and whether the connection may carry another
request (the keep-alive rules of API.md: HTTP/1.1 and no
``Connection: close``, a body whose end is known without the server closing,
``Keep-Alive: max`` not 0, ``Keep-Alive: timeout`` not already passed).

What varies: status (200-999, bodiless 204/304), reason phrase (obs-text
included), HTTP/1.0 or 1.1, 0-2 interim 1xx responses before the final one,
header names and values (token characters, obs-text, odd case), framing by
Content-Length, chunked (extensions, upper-case and zero-padded sizes,
trailers) or the server closing, ``Content-Encoding`` gzip / deflate /
both / unknown, ``Content-Type`` charsets, and ``Keep-Alive`` parameters
with the spellings servers use.

`mutated()` then damages the bytes: flip, delete, insert (CR, LF, NUL,
digits, colons, a second status line...), duplicate, truncate.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from hypothesis import strategies as st

if TYPE_CHECKING:
    from collections.abc import Callable

Framing = Literal["length", "chunked", "close"]

#: tchar (RFC 9110 section 5.6.2): what a header name is made of.
TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: Visible ASCII and obs-text, what a header value or reason is made of.
VCHAR = "".join(map(chr, range(0x21, 0x7F))) + "".join(map(chr, range(0x80, 0x100)))

#: Header names the strategy sets itself (framing, persistence, coding).
RESERVED = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}
)

#: Charsets whose codec decodes text. ``Response.text`` must never raise on
#: any of them; unknown names fall back to UTF-8. (Codecs that are not text
#: encodings, like "rot13", are in the regression corpus: a known bug.)
TEXT_CHARSETS = ("utf-8", "UTF-8", "latin-1", "ascii", "utf-16", "cp1252", "koi8-r", "no-such")

#: Each content-coding and how to apply it.
CODINGS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
}


@dataclass(frozen=True)
class GeneratedResponse:
    """A response on the wire and what a correct client must make of it."""

    wire: bytes
    method: str
    status: int
    reason: str
    http_version: str
    #: Headers as sent (the framing ones included), in order.
    headers: list[tuple[str, str]]
    #: The body after framing and content-coding are undone ("" for HEAD...).
    body: bytes
    #: The server closes the connection after sending.
    close_after: bool
    #: A correct client may send its next request over this connection.
    reusable: bool


header_names = st.text(TCHAR, min_size=1, max_size=12).filter(
    lambda name: name.lower() not in RESERVED
)
header_values = st.builds(
    lambda words: " ".join(words),
    st.lists(st.text(VCHAR, min_size=1, max_size=10), max_size=3),
)
reasons = st.builds(
    lambda words: " ".join(words),
    st.lists(st.text(VCHAR, min_size=1, max_size=8), max_size=3),
)
bodies = st.one_of(
    st.binary(max_size=2000),
    st.builds(lambda n, b: b * n, st.integers(1, 20_000), st.binary(min_size=1, max_size=3)),
)


@st.composite
def keep_alive_headers(draw: st.DrawFn) -> tuple[str | None, bool]:
    """A ``Keep-Alive`` value (or None) and whether it still allows reuse."""
    if not draw(st.booleans()):
        return None, True
    timeout = draw(st.none() | st.integers(0, 120))
    max_ = draw(st.none() | st.integers(0, 1000))
    params = []
    if timeout is not None:
        params.append(
            draw(
                st.sampled_from(["timeout={}", "Timeout={}", 'timeout="{}"', "timeout = {}"])
            ).format(timeout)
        )
    if max_ is not None:
        params.append(draw(st.sampled_from(["max={}", "MAX={}", 'max="{}"'])).format(max_))
    if draw(st.booleans()):
        params.append(draw(st.sampled_from(["foo=bar", "x", "timeout=", "max=soon"])))
    params = draw(st.permutations(params))
    value = draw(st.sampled_from([", ", ",", " , "])).join(params)
    # timeout=N: reused while idle less than N - min(1, N/4) seconds; the
    # second request follows within milliseconds, so N >= 1 allows it.
    allows = (timeout is None or timeout >= 1) and (max_ is None or max_ >= 1)
    return value, allows


def _chunked(draw: st.DrawFn, payload: bytes) -> bytes:
    """`payload` in chunked framing: random sizes, extensions, trailers."""
    out = b""
    rest = payload
    for _ in range(50):
        if not rest:
            break
        size = draw(st.integers(1, max(1, len(rest))))
        piece, rest = rest[:size], rest[size:]
        digits = draw(st.sampled_from(["{:x}", "{:X}", "000{:x}"])).format(len(piece))
        # RFC 9112 also allows whitespace before ";" (BWS); h11 refuses it
        # (see the corpus), so it is left out of the "valid" responses.
        ext = draw(st.sampled_from(["", ";ext", ';name="v a l"', ";ext=1"]))
        out += f"{digits}{ext}\r\n".encode() + piece + b"\r\n"
    if rest:
        out += b"%x\r\n%s\r\n" % (len(rest), rest)
    trailers = draw(st.lists(st.tuples(header_names, header_values), max_size=2))
    out += b"0\r\n" + b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in trailers)
    return out + b"\r\n"


@st.composite
def responses(draw: st.DrawFn, *, methods: tuple[str, ...] = ("GET", "HEAD")) -> GeneratedResponse:
    """A valid response to a GET or HEAD, with its expected interpretation."""
    method = draw(st.sampled_from(methods))
    http_version = draw(st.sampled_from(["1.1", "1.1", "1.1", "1.0"]))
    status = draw(st.sampled_from([200, 201, 204, 206, 299, 301, 304, 404, 418, 500, 503, 999]))
    reason = draw(reasons)
    bodiless = method == "HEAD" or status in (204, 304)
    framing: Framing = draw(st.sampled_from(["length", "chunked", "close"]))
    if framing == "chunked" and http_version == "1.0":
        framing = "length"  # chunked framing is HTTP/1.1 only (RFC 9112 section 7)
    content = draw(bodies)
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=6))
    coding = draw(
        st.sampled_from(
            [None, "identity", "gzip", "x-gzip", "deflate", "gzip, deflate", "br-unknown"]
        )
    )
    encoded = content
    if coding is not None:
        for name in coding.split(", "):
            if name in CODINGS:
                encoded = CODINGS[name](encoded)
        if coding == "br-unknown":
            coding = "x-unknown"  # passed through undecoded
        headers.append(("Content-Encoding", coding))
    if draw(st.booleans()):
        charset = draw(st.sampled_from(TEXT_CHARSETS))
        headers.append(("Content-Type", f"text/plain; charset={charset}"))
    connection_close = draw(st.booleans()) and draw(st.booleans())
    keep_alive, keep_alive_allows = draw(keep_alive_headers())
    if keep_alive is not None:
        headers.append(("Keep-Alive", keep_alive))
    if connection_close:
        headers.append(
            ("Connection", draw(st.sampled_from(["close", "Close", "keep-alive, close"])))
        )
    elif http_version == "1.0" and draw(st.booleans()):
        headers.append(("Connection", "keep-alive"))
    if framing == "length":
        headers.append(("Content-Length", str(len(encoded))))
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", draw(st.sampled_from(["chunked", "Chunked"]))))
    headers = draw(st.permutations(headers))
    interim = b""
    if http_version == "1.1":
        for _ in range(draw(st.integers(0, 2))):
            interim += draw(
                st.sampled_from(
                    [
                        b"HTTP/1.1 100 Continue\r\n\r\n",
                        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n",
                    ]
                )
            )
    head = f"HTTP/{http_version} {status} {reason}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers)
    wire = interim + head.encode("latin-1") + b"\r\n"
    if not bodiless:
        wire += _chunked(draw, encoded) if framing == "chunked" else encoded
    # Who closes: the server must when the body runs to the close, and does
    # after Connection: close or an HTTP/1.0 answer (unless it kept it).
    end_by_close = framing == "close" and not bodiless
    keeps_10 = ("Connection", "keep-alive") in headers and not end_by_close
    close_after = end_by_close or connection_close or (http_version == "1.0" and not keeps_10)
    reusable = (
        http_version == "1.1" and not connection_close and not end_by_close and keep_alive_allows
    )
    return GeneratedResponse(
        wire=wire,
        method=method,
        status=status,
        reason=reason,
        http_version=f"HTTP/{http_version}",
        headers=headers,
        body=b"" if bodiless else content,
        close_after=close_after,
        reusable=reusable,
    )


#: Bytes that make parsers go wrong when they appear in the wrong place.
NASTY = [
    b"\r",
    b"\n",
    b"\r\n",
    b"\x00",
    b":",
    b" ",
    b"\t",
    b"0",
    b"9",
    b"f",
    b"-",
    b";",
    b"\xff",
    b"\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n",
    b"Content-Length: 5\r\n",
    b"Transfer-Encoding: chunked\r\n",
]


@st.composite
def mutated(draw: st.DrawFn, wire: bytes) -> bytes:
    """`wire` with one to three byte-level mutations."""
    data = bytearray(wire)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["flip", "delete", "insert", "duplicate", "truncate"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif kind == "insert":
            data[at:at] = draw(st.sampled_from(NASTY) | st.binary(min_size=1, max_size=8))
        elif kind == "duplicate":
            data[at:at] = data[at : at + draw(st.integers(1, 32))]
        else:
            del data[at:]
    return bytes(data)
