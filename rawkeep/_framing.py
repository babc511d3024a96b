"""A response body's framing, chosen once per response: counted, or read by h11.

As h11 picks one reader per framing, the exchange picks one of these from
the response head (RFC 9112 section 6.3): ``Counted`` for a known length
(no body at all for HEAD, 204 and 304), ``H11Body`` for chunked bodies and
bodies that end when the server closes. Both answer ``next_piece()``
without I/O (a piece, ``None`` at the end, or ``NEED_DATA``), take what the
socket gave through ``feed``, say how much to ask of the socket with
``read_size()``, and tell the reuse verdict what came after the body
(``past_end``) and whether the server closed (``eof``).

Counted bodies are read past h11. Through h11, every block is copied into
its buffer, sliced out as a Data event and turned into bytes again, and
even a 13-byte body costs two more events and a ``start_next_cycle``:
about 8 us of Python per response, a fifth of a small request, and half
the socket's speed on large downloads. A known length needs no parsing,
only counting: what h11 read past the head, then the socket's bytes as they
come, never past the body's end.
"""

from __future__ import annotations

import enum
from typing import Final

import h11

from ._exceptions import RemoteProtocolError

__all__ = ["BODY_READ", "NEED_DATA", "READ_SIZE", "Counted", "H11Body", "Need", "h11_words"]

#: Bytes asked of the socket per read through h11 (heads, and the bodies
#: h11 reads). Each read gets a new bytes object: an idle connection holds
#: no read buffer (it would cost 64 KiB per pooled connection), and h11
#: copies the bytes into its own buffer anyway.
READ_SIZE: Final = 64 * 1024

#: Most bytes asked of the socket per read of a counted body. Loopback reads
#: rarely return more; a larger request only costs a larger allocation.
BODY_READ: Final = 256 * 1024


class Need(enum.Enum):
    NEED_DATA = "need data"


#: ``next_piece`` and ``next_head``: bytes must be read and fed first.
NEED_DATA: Final = Need.NEED_DATA


class Counted:
    """A body of known length (``Content-Length``, or none at all), counted
    past h11: first what h11 read past the head, then the socket's bytes.

    No ``__slots__``, as ``Exchange``: one is made per response."""

    def __init__(self, length: int, h11_conn: h11.Connection) -> None:
        early, eof = h11_conn.trailing_data
        #: Bytes still to come.
        self.left = length
        #: What the read of the head brought along: the body's start (or
        #: all of it), and, from a broken server, bytes past its end.
        self._early = early
        #: h11 had already seen the server close.
        self.eof = eof
        #: Bytes came past the body's end.
        self.past_end = False
        #: The whole body, when it came with the head (the common small
        #: response): the shell may take it in one step, ending the cycle.
        self.at_hand = early if len(early) == length else None

    def next_piece(self) -> bytes | bytearray | Need | None:
        early = self._early
        if early:
            self._early = b""
            left = self.left
            if len(early) > left:
                self.past_end = True
                early = early[:left]
            if early:
                self.left = left - len(early)
                return early
        if self.left == 0:
            return None
        if self.eof:  # nothing more can come
            raise self._truncated()
        return NEED_DATA

    def read_size(self) -> int:
        return min(self.left, BODY_READ)

    def feed(self, data: bytes) -> bytes | bytearray | Need | None:
        """Bytes the socket gave (never more than ``read_size()``): they are
        the next piece, as they are."""
        if not data:
            raise self._truncated()
        self.left -= len(data)
        return data

    def _truncated(self) -> RemoteProtocolError:
        return RemoteProtocolError(
            f"server closed the connection with {self.left} bytes of the body still to come"
        )


class H11Body:
    """A chunked body, or one that ends when the server closes: h11 reads it."""

    __slots__ = ("_h11", "_max_head_size", "_read_size", "_trailers")

    #: Never the whole body at once: h11 hands it over in pieces.
    at_hand: Final = None
    #: Not counted: how much is left is known only at its end.
    left: Final = None

    def __init__(
        self,
        h11_conn: h11.Connection,
        max_head_size: int,
        chunked: bool,
        trailers: list[tuple[bytes, bytes]],
    ) -> None:
        self._h11 = h11_conn
        self._max_head_size = max_head_size
        #: Where the trailer fields go when the body ends (the response's).
        self._trailers = trailers
        # Chunk-size lines and trailers are bounded by h11 only while they
        # are incomplete; reading no more than the limit at a time keeps a
        # complete one under twice the limit.
        self._read_size = min(READ_SIZE, max_head_size) if chunked else READ_SIZE

    def next_piece(self) -> bytes | bytearray | Need | None:
        h11_conn = self._h11
        try:
            while True:
                event = h11_conn.next_event()
                kind = type(event)
                if kind is h11.Data:
                    # h11 hands over a bytearray, typed as bytes.
                    data: bytes | bytearray = event.data  # type: ignore[union-attr]
                    if data:
                        return data
                elif kind is h11.EndOfMessage:
                    # A chunked body's trailer section (RFC 9112 section
                    # 7.1.2), checked by h11 as it checks a head.
                    self._trailers.extend(event.headers.raw_items())  # type: ignore[union-attr]
                    return None
                elif event is h11.NEED_DATA:
                    return NEED_DATA
                else:
                    raise RemoteProtocolError(f"unexpected {kind.__name__} in the response body")
        except h11.RemoteProtocolError as exc:
            raise self._error(exc) from exc

    def read_size(self) -> int:
        return self._read_size

    def feed(self, data: bytes) -> bytes | bytearray | Need | None:
        self._h11.receive_data(data)  # b"" tells h11 the peer closed
        return self.next_piece()

    @property
    def past_end(self) -> bool:
        """Bytes came after the body's end."""
        return bool(self._h11.trailing_data[0])

    @property
    def eof(self) -> bool:
        """The server closed (for a body that ends so, it always has)."""
        return self._h11.trailing_data[1]

    def _error(self, exc: h11.RemoteProtocolError) -> RemoteProtocolError:
        if exc.error_status_hint == 431:  # h11's "receive buffer too long"
            return RemoteProtocolError(
                "a chunk-size line or the trailers larger than"
                f" max_header_size={self._max_head_size} bytes"
            )
        if self._h11.trailing_data[1]:
            return RemoteProtocolError(
                "server closed the connection before the response body was complete"
            )
        return RemoteProtocolError(f"malformed response body: {h11_words(exc)}")


def h11_words(exc: h11.RemoteProtocolError) -> str:
    """h11's description of a parse error, with its buffer types' reprs
    (``bytearray(b'...')``) shown as plain bytes."""
    text = str(exc)
    if "bytearray(" in text:
        import re  # only on this error path

        text = re.sub(r"bytearray\((b(['\"]).*?\2)\)", r"\1", text)
    return text
