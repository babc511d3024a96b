"""``Response``: a status, headers, and a body that may still be on the wire.

A ``Response`` owns its connection until the body has been read to the end,
then hands it back to the pool. Closing it earlier either drains the rest
(when little is left, so the connection can be reused) or closes the
connection: a half-read connection is never reused, because the next
response would start in the middle of this one's body.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final, final

from ._decoders import PIECE_SIZE, decode_stream
from ._exceptions import HTTPStatusError, RawkeepError
from ._headers import Headers

if TYPE_CHECKING:
    from ._connection import Connection, Head
    from ._events import CloseReason
    from ._pool import Pool

__all__ = ["Response"]

#: A streamed response closed with at most this much body left is drained so
#: its connection can be reused; with more left, reading it would cost more
#: than a new connection (a loopback connect is ~50 us, 64 KiB ~20 us of reads,
#: but over a real network the balance tips quickly).
DRAIN_LIMIT: Final = 64 * 1024

#: Most seconds spent draining, whatever the read timeout says.
DRAIN_TIME: Final = 1.0


@final
class Response:
    """An HTTP response; its body may still be on the wire (``stream()``).

    Attributes:
        status: the status code, e.g. 200.
        reason: the reason phrase, e.g. "OK" (may be empty).
        http_version: "HTTP/1.1" or "HTTP/1.0".
        headers: the response headers.
        url: the URL requested, without credentials.
        history: responses of the redirects that led here (oldest first).
        connection_id: the connection it came over, unique per client.
        reused: whether that connection had served an earlier response.
    """

    __slots__ = (
        "__weakref__",
        "_conn",
        "_content",
        "_content_encoding",
        "_headers",
        "_max_decoded_size",
        "_pool",
        "_raw_headers",
        "_read_timeout",
        "_received",
        "_stream_started",
        "connection_id",
        "history",
        "http_version",
        "reason",
        "reused",
        "status",
        "url",
    )

    def __init__(
        self,
        *,
        status: int,
        reason: str,
        http_version: str,
        headers: Headers,
        url: str,
        connection: Connection | None = None,
        pool: Pool | None = None,
        read_timeout: float | None = None,
        max_decoded_size: int | None = None,
        content: bytes | None = None,
        connection_id: int = -1,
        reused: bool = False,
    ) -> None:
        self.status = status
        self.reason = reason
        self.http_version = http_version
        self._headers: Headers | None = headers
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self.url = url
        self.history: list[Response] = []
        self.connection_id = connection.id if connection is not None else connection_id
        self.reused = connection.reused if connection is not None else reused
        self._conn = connection
        self._pool = pool
        self._read_timeout = read_timeout
        self._max_decoded_size = max_decoded_size
        self._content_encoding = headers.get("content-encoding")
        self._content = content
        self._received = 0
        self._stream_started = False

    @classmethod
    def _from_head(
        cls,
        head: Head,
        url: str,
        connection: Connection,
        pool: Pool,
        read_timeout: float | None,
        max_decoded_size: int | None,
    ) -> Response:
        """A response whose body is still on ``connection`` (the client's
        path: the same as ``__init__``, minus the work nobody may need)."""
        self = cls.__new__(cls)
        self.status, self.reason, self.http_version, self._raw_headers, encoding = head
        self._headers = None
        self.url = url
        self.history = []
        self.connection_id = connection.id
        self.reused = connection.reused
        self._conn = connection
        self._pool = pool
        self._read_timeout = read_timeout
        self._max_decoded_size = max_decoded_size
        self._content_encoding = encoding
        self._content = None
        self._received = 0
        self._stream_started = False
        return self

    @property
    def headers(self) -> Headers:
        """The response headers (built on first access)."""
        headers = self._headers
        if headers is None:
            headers = self._headers = Headers._from_raw(self._raw_headers)
        return headers

    # -- the body -------------------------------------------------------------

    @property
    def content(self) -> bytes:
        """The whole body; read from the connection on first access."""
        if self._content is None:
            return self.read()
        return self._content

    def read(self) -> bytes:
        """Read the rest of the body, decode it, keep it, release the connection.

        Raises:
            ReadTimeout, RemoteProtocolError: while reading.
            DecodingError: the body is corrupt for its Content-Encoding.
            RuntimeError: the body was already consumed by iteration.
        """
        if self._content is None:
            if self._content_encoding is not None:
                # Whole decoding steps (1 MiB), not 64 KiB pieces: they are
                # joined at once, and fewer of them join faster.
                self._content = b"".join(self._decoded(piece_size=None))
            else:
                self._content = self._read_rest()
        return self._content

    def _read_rest(self) -> bytes:
        """The undecoded body, read straight from the connection without the
        generators iteration needs (most bodies are small and arrive whole)."""
        conn = self._conn
        if self._stream_started or conn is None:
            self._take_stream_started()  # raises the right RuntimeError
        assert conn is not None
        self._stream_started = True
        try:
            content = conn.receive_rest(self._read_timeout)
        except BaseException as exc:
            self._fail(conn, exc)
            raise
        self._conn = None
        self._give_back(conn, None)
        self._received += len(content)
        return content

    def _read_or_close(self) -> None:
        """Read the body if it is small (at most 64 KiB); otherwise close.

        Used for redirect responses: their bodies are kept for ``history``
        when cheap, and the connection is reused either way when possible.
        """
        length = self.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) <= DRAIN_LIMIT:
            self.read()
        else:
            self.close()

    @property
    def text(self) -> str:
        """The body decoded with the charset of Content-Type, else UTF-8.

        Undecodable bytes become U+FFFD rather than raising.
        """
        return self.content.decode(self.encoding, errors="replace")

    @property
    def encoding(self) -> str:
        """The charset named by Content-Type, or "utf-8"."""
        content_type = self.headers.get("content-type", "")
        for param in content_type.split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
                try:
                    import codecs

                    name = codecs.lookup(charset).name
                    b"a".decode(name, "ignore")  # refuses codecs that are not text (rot13...)
                except LookupError:
                    break
                return name
        return "utf-8"

    def json(self, **kwargs: Any) -> Any:
        """The body parsed as JSON (``json.loads`` keyword arguments pass through).

        Raises:
            ValueError: the body is not valid JSON.
        """
        import json

        return json.loads(self.content, **kwargs)

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        """The body in pieces, with its Content-Encoding undone as it arrives.

        Decoding is done in bounded steps: whatever the compression ratio, a
        decoded piece is at most 64 KiB, and memory stays flat however large
        the decoded body (docs/decoding.md).

        Args:
            chunk_size: yield pieces of exactly this many bytes (the last may
                be shorter); ``None`` yields them as they are decoded (at most
                64 KiB each) or, without a Content-Encoding, as received.

        Raises:
            ReadTimeout, RemoteProtocolError: while reading; the connection
                is then closed.
            DecodingError: the body is corrupt for its Content-Encoding,
                decodes to more than ``max_decoded_size``, or lists more
                than five codings.
            RuntimeError: the body was already consumed, or the response
                closed before it was read.
            ValueError: ``chunk_size`` is not positive.
        """
        _check_chunk_size(chunk_size)
        if self._content is not None:
            return _rechunk(iter((self._content,)), chunk_size)
        return _rechunk(self._decoded(PIECE_SIZE), chunk_size)

    def _decoded(self, piece_size: int | None) -> Iterator[bytes]:
        """The body from the connection, its Content-Encoding undone in
        pieces of at most ``piece_size`` bytes (``None``: whole steps)."""
        raw = self._take_stream()
        return decode_stream(self._content_encoding, raw, self._max_decoded_size, piece_size)

    def iter_raw(self, chunk_size: int | None = None) -> Iterator[bytes]:
        """The body in pieces exactly as received, Content-Encoding kept.

        Arguments and errors as for ``iter_bytes``; also a ``RuntimeError``
        when the body was already read and decoded (call ``iter_raw`` first).
        """
        _check_chunk_size(chunk_size)
        if self._content is not None:
            if self.headers.get("content-encoding", "identity").lower() != "identity":
                raise RuntimeError(
                    "the body was already read and decoded; iter_raw() must come first"
                )
            return _rechunk(iter((self._content,)), chunk_size)
        return _rechunk(self._take_stream(), chunk_size)

    def _take_stream(self) -> Iterator[bytes]:
        self._take_stream_started()
        return self._iter_from_connection()

    def _take_stream_started(self) -> None:
        if self._stream_started:
            raise RuntimeError("the response body was already consumed")
        if self._conn is None:
            raise RuntimeError("the response was closed before its body was read")
        self._stream_started = True

    def _iter_from_connection(self) -> Iterator[bytes]:
        try:
            while (chunk := self._read_chunk()) is not None:
                yield chunk
        finally:
            # Left early (break, exception in the caller's loop): close, which
            # drains a small rest or closes the connection.
            if self._conn is not None:
                self.close()

    def _read_chunk(self) -> bytes | None:
        conn = self._conn
        if conn is None:
            return None
        try:
            data = conn.receive_body(self._read_timeout)
        except BaseException as exc:
            self._fail(conn, exc)
            raise
        if data is None:
            self._conn = None
            self._give_back(conn, None)
            return None
        self._received += len(data)
        return data if type(data) is bytes else bytes(data)

    def _fail(self, conn: Connection, exc: BaseException) -> None:
        """Reading failed: close the connection, say which one in the error."""
        self._conn = None
        self._give_back(conn, "error")
        if isinstance(exc, RawkeepError):
            exc.origin = conn.origin_str
            exc.connection_id = conn.id

    def _give_back(self, conn: Connection, reason: CloseReason | None) -> None:
        """Release ``conn`` to the pool, or close it for ``reason``."""
        assert self._pool is not None
        if reason is None:
            self._pool.release(conn)
        else:
            self._pool.discard(conn, reason)

    # -- closing --------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        """Whether the connection has been handed back (body read or closed)."""
        return self._conn is None

    def close(self) -> None:
        """Give the connection back without reading the rest of the body.

        A small rest (at most 64 KiB, read within 1 s) is drained and the
        connection reused; otherwise it is closed. Idempotent.
        """
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        self._give_back(conn, None if self._drain(conn) else "unread_body")

    def _drain(self, conn: Connection) -> bool:
        length = self.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) - self._received > DRAIN_LIMIT:
            return False
        deadline = time.monotonic() + DRAIN_TIME
        budget = DRAIN_LIMIT
        timeout = DRAIN_TIME if self._read_timeout is None else min(self._read_timeout, DRAIN_TIME)
        try:
            while (data := conn.receive_body(timeout)) is not None:
                budget -= len(data)
                if budget < 0 or time.monotonic() > deadline:
                    return False
        except RawkeepError:
            return False
        return True

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- status ---------------------------------------------------------------

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300

    def raise_for_status(self) -> Response:
        """Raise ``HTTPStatusError`` for a 4xx or 5xx status; else return self.

        Raises:
            HTTPStatusError: carrying this response as ``.response``.
        """
        if 400 <= self.status < 600:
            kind = "client error" if self.status < 500 else "server error"
            raise HTTPStatusError(
                f"{self.status} {self.reason} ({kind}) for {self.url}",
                response=self,
                connection_id=self.connection_id,
            )
        return self

    def __repr__(self) -> str:
        return f"<Response [{self.status} {self.reason}]>"

    def __getstate__(self) -> dict[str, Any]:
        # A pickled response keeps its data, never its connection.
        if self._conn is not None:
            self.read()
        return {
            "status": self.status,
            "reason": self.reason,
            "http_version": self.http_version,
            "headers": self.headers.items(),
            "url": self.url,
            "content": self._content,
            "history": self.history,
            "connection_id": self.connection_id,
            "reused": self.reused,
        }

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        self.__init__(
            status=state["status"],
            reason=state["reason"],
            http_version=state["http_version"],
            headers=Headers(state["headers"]),
            url=state["url"],
            content=state["content"],
            connection_id=state["connection_id"],
            reused=state["reused"],
        )
        self.history = state["history"]


def _check_chunk_size(chunk_size: int | None) -> None:
    if chunk_size is not None and chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive int, not {chunk_size!r}")


def _rechunk(chunks: Iterator[bytes], size: int | None) -> Iterator[bytes]:
    if size is None:
        return chunks
    return _exact_chunks(chunks, size)


def _exact_chunks(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    pending = bytearray()
    try:
        for chunk in chunks:
            pending += chunk
            while len(pending) >= size:
                yield bytes(pending[:size])
                del pending[:size]
    finally:
        # Closing this generator early must close the one reading the
        # connection now, not whenever it is garbage collected.
        if isinstance(chunks, Generator):
            chunks.close()
    if pending:
        yield bytes(pending)
