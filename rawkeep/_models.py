"""``Response``: a status, headers, and a body that may still be on the wire.

A streamed response reads its body through a ``_body.BodyStream`` (from
``Client``) or a ``_body.AsyncBodyStream`` (from ``AsyncClient``), which
owns the connection until the body ends or is closed, and gives it back.
The body methods match the stream: ``read``/``iter_bytes``/``iter_raw`` for
a blocking one, ``aread``/``aiter_bytes``/``aiter_raw``/``aclose`` for an
asyncio one; the other kind raises ``RuntimeError`` on an unread body.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, final

from ._body import DRAIN_LIMIT, AsyncBodyStream, BodyStream
from ._chunks import arechunk, check_chunk_size, one, rechunk
from ._decoders import PIECE_SIZE, BodyDecoder, decode_stream
from ._events import info_logger
from ._exceptions import RawkeepError
from ._headers import Headers
from ._messages import ExchangeRecord, InterimResponse, SentRequest
from ._text import TextMethods

if TYPE_CHECKING:
    import logging
    from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping

    import h11

    from ._exchange import Head

__all__ = ["HTTPStatusError", "Response"]


@final
class Response(TextMethods, ExchangeRecord):
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

    ``request``, ``elapsed``, ``interim`` and ``trailers`` come from
    ``ExchangeRecord``; ``text``, ``json()`` and the text iterators from
    ``TextMethods``.
    """

    __slots__ = (
        "__weakref__",
        "_body",
        "_content",
        "_content_encoding",
        "_headers",
        "_max_decoded_size",
        "_raw_headers",
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
        content: bytes | None = None,
        connection_id: int = -1,
        reused: bool = False,
    ) -> None:
        self.status = status
        self.reason = reason
        self.http_version = http_version
        self.url = url
        self.history: list[Response] = []
        self.connection_id = connection_id
        self.reused = reused
        self._headers: Headers | None = headers
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._content_encoding = headers.get("content-encoding")
        self._content = content
        self._body: BodyStream | AsyncBodyStream | None = None
        self._max_decoded_size: int | None = None
        # What only a received response has (see _from_head); pickling
        # restores them.
        self._request: h11.Request | SentRequest | None = None
        self._elapsed = 0.0
        self._interim: list[Any] | tuple[()] = ()
        self._trailers: list[tuple[bytes, bytes]] | tuple[()] = ()
        self._trailer_headers: Headers | None = None

    @classmethod
    def _from_head(
        cls,
        head: Head,
        url: str,
        connection_id: int,
        reused: bool,
        content: bytes | None,
        body: BodyStream | AsyncBodyStream | None,
        max_decoded_size: int | None,
    ) -> Response:
        """A response whose body is still to be read from ``body``, or, with
        ``body`` None, whose ``content`` is all of it: the client's path,
        once per response, setting what ``__init__`` sets (its headers are
        built only if someone looks)."""
        self = cls.__new__(cls)
        self.status = head.status
        self.reason = head.reason
        self.http_version = head.http_version
        self.url = url
        self.history = []
        self.connection_id = connection_id
        self.reused = reused
        self._headers = None
        self._raw_headers = head.raw_headers
        self._content_encoding = head.content_encoding
        self._content = content
        self._body = body
        self._max_decoded_size = max_decoded_size
        self._request = head.request
        self._elapsed = head.elapsed
        self._interim = head.interim
        self._trailers = head.trailers
        self._trailer_headers = None
        if "logging" in sys.modules:  # else nobody can have turned INFO on
            logger = info_logger()
            if logger is not None:
                _log_response(logger, self)
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
                # Straight from the connection, without the generators
                # iteration needs (most bodies are small and arrive whole).
                body = self._body
                if type(body) is not BodyStream:
                    body = self._stream()  # raises the right RuntimeError
                self._content = body.read_all()
        return self._content

    def _stream(self) -> BodyStream:
        body = self._body
        if type(body) is BodyStream:
            return body
        if body is None:
            raise RuntimeError("the response was closed before its body was read")
        raise RuntimeError(
            "this response came from an AsyncClient: read its body with aread(),"
            " aiter_bytes() or aiter_raw()"
        )

    def _astream(self) -> AsyncBodyStream:
        body = self._body
        if type(body) is AsyncBodyStream:
            return body
        if body is None:
            raise RuntimeError("the response was closed before its body was read")
        raise RuntimeError(
            "this response came from a Client: read its body with read(),"
            " iter_bytes() or iter_raw()"
        )

    def _read_or_close(self) -> None:
        """Read the body if it is small (at most 64 KiB); otherwise close.

        Used for redirect responses: their bodies are kept for ``history``
        when cheap, and the connection is reused either way when possible.
        """
        if self._small_body():
            self.read()
        else:
            self.close()

    async def _aread_or_close(self) -> None:
        """``_read_or_close`` for a response from ``AsyncClient``."""
        if self._small_body():
            await self.aread()
        else:
            await self.aclose()

    def _small_body(self) -> bool:
        """The body announces at most DRAIN_LIMIT bytes: reading it costs
        less than losing the connection."""
        length = self.headers.get("content-length")
        return length is not None and length.isdigit() and int(length) <= DRAIN_LIMIT

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
        check_chunk_size(chunk_size)
        if self._content is not None:
            return rechunk(iter((self._content,)), chunk_size)
        return rechunk(self._decoded(PIECE_SIZE), chunk_size)

    def _check_raw_after_read(self) -> None:
        if self.headers.get("content-encoding", "identity").lower() != "identity":
            raise RuntimeError("the body was already read and decoded; iter_raw() must come first")

    def _decoded(self, piece_size: int | None) -> Iterator[bytes]:
        """The body from the connection, its Content-Encoding undone in
        pieces of at most ``piece_size`` bytes (``None``: whole steps)."""
        raw = self._stream().pieces()
        return decode_stream(self._content_encoding, raw, self._max_decoded_size, piece_size)

    def iter_raw(self, chunk_size: int | None = None) -> Iterator[bytes]:
        """The body in pieces exactly as received, Content-Encoding kept.

        Arguments and errors as for ``iter_bytes``; also a ``RuntimeError``
        when the body was already read and decoded (call ``iter_raw`` first).
        """
        check_chunk_size(chunk_size)
        if self._content is not None:
            self._check_raw_after_read()
            return rechunk(iter((self._content,)), chunk_size)
        return rechunk(self._stream().pieces(), chunk_size)

    # -- the body, from AsyncClient ------------------------------------------------

    async def aread(self) -> bytes:
        """``read()`` for a response from ``AsyncClient``: read the rest of
        the body, decode it, keep it, release the connection.

        Raises:
            as for ``read``; ``RuntimeError`` also for a response from a
            ``Client``.
        """
        if self._content is None:
            if self._content_encoding is not None:
                self._content = b"".join(
                    [piece async for piece in self._adecoded(self._astream(), None)]
                )
            else:
                self._content = await self._astream().read_all()
        return self._content

    def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """``iter_bytes()`` for a response from ``AsyncClient``: the body in
        pieces, its Content-Encoding undone in bounded steps as it arrives.

        Arguments and errors as for ``iter_bytes``.
        """
        check_chunk_size(chunk_size)
        if self._content is not None:
            return arechunk(one(self._content), chunk_size)
        return arechunk(self._adecoded(self._astream(), PIECE_SIZE), chunk_size)

    def aiter_raw(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        """``iter_raw()`` for a response from ``AsyncClient``: the body in
        pieces exactly as received. Arguments and errors as for ``iter_raw``.
        """
        check_chunk_size(chunk_size)
        if self._content is not None:
            self._check_raw_after_read()
            return arechunk(one(self._content), chunk_size)
        return arechunk(self._astream().pieces(), chunk_size)

    async def _adecoded(
        self, body: AsyncBodyStream, piece_size: int | None
    ) -> AsyncGenerator[bytes, None]:
        """``_decoded`` for an asyncio body: the same decoder, fed by awaits."""
        raw = body.pieces()
        decoder = BodyDecoder(self._content_encoding, self._max_decoded_size, piece_size)
        try:
            if decoder.passthrough:
                async for data in raw:
                    yield data
                return
            async for data in raw:
                for piece in decoder.feed(data):
                    yield piece
            for piece in decoder.end():
                yield piece
        finally:
            await raw.aclose()  # stopped early: the body is given back now

    # -- closing --------------------------------------------------------------

    @property
    def is_closed(self) -> bool:
        """Whether the connection has been handed back (body read or closed)."""
        return self._body is None or self._body.is_closed

    def close(self) -> None:
        """Give the connection back without reading the rest of the body.

        A small rest (at most 64 KiB, read within 1 s) is drained and the
        connection reused; otherwise it is closed. Idempotent. On a response
        from ``AsyncClient``, which can't wait here, the connection of an
        unread body is closed: ``await aclose()`` drains it instead.
        """
        body = self._body
        if type(body) is BodyStream:
            body.close()
        elif body is not None:
            body.discard()

    async def aclose(self) -> None:
        """``close()`` for a response from ``AsyncClient``: a small unread
        rest is drained (awaited) so the connection can be reused; a larger
        one closes it. Idempotent.

        Raises:
            RuntimeError: the response came from a ``Client`` (use ``close``).
        """
        body = self._body
        if body is not None and not body.is_closed:
            await self._astream().close()

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
        if not self.is_closed:
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
            "request": None if self._request is None else _request_state(self.request),
            "elapsed": self._elapsed,
            "interim": [(i.status, i.reason, i.headers.items()) for i in self.interim],
            "trailers": self.trailers.raw(),
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
        request = state.get("request")
        if request is not None:
            method, url, headers = request
            self._request = SentRequest(method=method, url=url, headers=Headers(headers))
        self._elapsed = state.get("elapsed", 0.0)
        self._interim = [
            InterimResponse(status=status, reason=reason, headers=Headers(headers))
            for status, reason, headers in state.get("interim", ())
        ]
        self._trailers = state.get("trailers", [])


def _log_response(logger: logging.Logger, response: Response) -> None:
    """One INFO line per response head received, as httpx logs one
    (``HTTP Request: GET http://host/ "HTTP/1.1 200 OK"``), then which
    connection carried it: ``(connection 3, reused)`` or ``new``."""
    logger.info(
        'HTTP Request: %s %s "%s %d %s" (connection %d, %s)',
        response.request.method,
        response.url,
        response.http_version,
        response.status,
        response.reason,
        response.connection_id,
        "reused" if response.reused else "new",
    )


def _request_state(request: SentRequest) -> tuple[str, str, list[tuple[str, str]]]:
    return request.method, request.url, request.headers.items()


class HTTPStatusError(RawkeepError):
    """``Response.raise_for_status()`` found a 4xx or 5xx status.

    Args:
        message: the status line and URL.
        response: the response (its request is ``response.request``).
    """

    def __init__(
        self,
        message: str,
        *,
        response: Response,
        origin: str | None = None,
        connection_id: int | None = None,
    ) -> None:
        super().__init__(message, origin=origin, connection_id=connection_id)
        self.response = response

    def __reduce__(self) -> tuple[Any, ...]:
        # BaseException's would call HTTPStatusError(message), without the
        # response it requires; the attributes follow from __dict__.
        return (_status_error, (type(self), self.message, self.response), self.__dict__)


def _status_error(cls: type[HTTPStatusError], message: str, response: Response) -> HTTPStatusError:
    """Unpickle an ``HTTPStatusError`` (see its ``__reduce__``)."""
    return cls(message, response=response)
