"""Content-Encoding decoders: gzip, deflate, and br / zstd when available.

The client advertises in ``Accept-Encoding`` exactly the codings it can
decode: gzip and deflate always (``zlib`` is in the standard library), br
when a ``brotli`` or ``brotlicffi`` module is importable, zstd when
``compression.zstd`` (Python 3.14) or ``zstandard`` is. Nothing is added as
a dependency: a coding whose module is absent is simply not advertised.

Decoding streams: each received piece is fed through the decoders as it
arrives, so a large compressed body is never held whole. Several codings
(``Content-Encoding: gzip, br``) were applied in order, so they are undone
in reverse.
"""

from __future__ import annotations

import importlib.util
import zlib
from typing import TYPE_CHECKING, Any, Final, Protocol

from ._exceptions import DecodingError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

__all__ = ["accept_encoding", "decode_stream"]


class Decoder(Protocol):
    def decode(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


#: Most bytes inflated per zlib call, so the size limit is checked often.
INFLATE_STEP: Final = 1024 * 1024

#: The first two bytes of every gzip member (RFC 1952 section 2.3.1).
GZIP_MAGIC: Final = b"\x1f\x8b"


class _Limit:
    """The decoded-size budget of one decoding step (``max_decoded_size``)."""

    __slots__ = ("maximum", "total")

    def __init__(self, maximum: int | None) -> None:
        self.maximum = maximum
        self.total = 0

    def count(self, size: int, coding: str) -> None:
        self.total += size
        if self.maximum is not None and self.total > self.maximum:
            raise DecodingError(
                f"{coding} body decodes to more than max_decoded_size={self.maximum}"
                " bytes (a decompression bomb, or a limit set too low)"
            )


class ZlibDecoder:
    """gzip, or deflate in either of its two real-world forms.

    RFC 9110 section 8.4.1.2 defines ``deflate`` as the zlib format, but
    some servers send a raw deflate stream instead; the first two bytes tell
    which (a zlib header names method 8 and is a multiple of 31, RFC 1950
    section 2.2), so they are looked at before anything is inflated.

    A gzip body may hold several members one after the other (RFC 1952
    section 2.2); each is inflated in turn. Bytes after the end of the
    stream that start no new member are ignored, as browsers do. A stream
    that ends before its end-of-stream marker is truncated: ``flush``
    raises rather than hand over part of the body as if it were all of it.
    """

    def __init__(self, coding: str, limit: _Limit) -> None:
        self._coding = coding
        self._limit = limit
        self._obj: Any = None  # zlib's Decompress, made once the form is known
        self._head = b""  # bytes held back until the next two tell what they are
        self._done = False  # the stream ended; anything more is ignored

    def _start(self, data: bytes) -> None:
        if self._coding == "gzip":
            wbits = 16 + zlib.MAX_WBITS
        elif (data[0] & 0x0F) == 8 and (data[0] << 8 | data[1]) % 31 == 0:
            wbits = zlib.MAX_WBITS  # zlib wrapper
        else:
            wbits = -zlib.MAX_WBITS  # raw deflate
        self._obj = zlib.decompressobj(wbits)

    def decode(self, data: bytes) -> bytes:
        if self._head:
            data, self._head = self._head + data, b""
        if self._obj is None:
            if len(data) < 2:
                self._head = data
                return b""
            self._start(data)
        try:
            return self._inflate(data)
        except zlib.error as exc:
            raise DecodingError(f"invalid {self._coding} data: {exc}") from exc

    def _inflate(self, data: bytes) -> bytes:
        # Inflate in bounded steps, counting as we go: 64 KiB of zeros can
        # inflate to 64 MiB, and a limit checked only afterwards would have
        # let all of it into memory first.
        pieces: list[bytes] = []
        while data and not self._done:
            if self._obj.eof:
                # The stream ended with bytes still coming: the next member
                # of a multi-member gzip body, or bytes that belong to no
                # stream, which browsers ignore and so do we.
                if self._coding == "gzip" and data[:2] == GZIP_MAGIC:
                    self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
                elif self._coding == "gzip" and data == GZIP_MAGIC[:1]:
                    self._head = data  # maybe a member's first byte: wait for more
                    break
                else:
                    self._done = True
                    break
            piece = self._obj.decompress(data, INFLATE_STEP)
            self._limit.count(len(piece), self._coding)
            pieces.append(piece)
            data = self._obj.unused_data if self._obj.eof else self._obj.unconsumed_tail
        return b"".join(pieces)

    def flush(self) -> bytes:
        if self._obj is None:
            if self._head:
                raise DecodingError(f"{self._coding} body too short to be valid")
            return b""  # an empty body: nothing was compressed
        # A lone byte held back after a complete member is trailing junk.
        try:
            tail: bytes = self._obj.flush()
        except zlib.error as exc:  # pragma: no cover - flush rarely fails
            raise DecodingError(f"invalid {self._coding} data: {exc}") from exc
        if not self._obj.eof:
            raise DecodingError(f"{self._coding} body ends before its end-of-stream marker")
        return tail


class ModuleDecoder:
    """br or zstd through whichever module provides it."""

    def __init__(self, coding: str, obj: Any, limit: _Limit) -> None:
        self._coding = coding
        self._obj = obj
        self._limit = limit

    def decode(self, data: bytes) -> bytes:
        try:
            method = getattr(self._obj, "process", None) or self._obj.decompress
            out = bytes(method(data))
        except Exception as exc:
            raise DecodingError(f"invalid {self._coding} data: {exc}") from exc
        self._limit.count(len(out), self._coding)
        return out

    def flush(self) -> bytes:
        return b""


def _brotli_module() -> Any:
    for name in ("brotli", "brotlicffi"):
        if importlib.util.find_spec(name) is not None:
            return importlib.import_module(name)
    return None


def _zstd_decompressor() -> Any:
    # compression.zstd is in the standard library from Python 3.14.
    if importlib.util.find_spec("compression") is not None:
        try:
            from compression import zstd  # type: ignore[import-not-found]

            return zstd.ZstdDecompressor()
        except ImportError:
            pass
    if importlib.util.find_spec("zstandard") is not None:
        import zstandard  # type: ignore[import-not-found]

        return zstandard.ZstdDecompressor().decompressobj()
    return None


def _make(coding: str, limit: _Limit) -> Decoder | None:
    if coding in ("gzip", "x-gzip"):
        return ZlibDecoder("gzip", limit)
    if coding == "deflate":
        return ZlibDecoder("deflate", limit)
    if coding == "br":
        module = _brotli_module()
        return None if module is None else ModuleDecoder("br", module.Decompressor(), limit)
    if coding == "zstd":
        obj = _zstd_decompressor()
        return None if obj is None else ModuleDecoder("zstd", obj, limit)
    return None


_ACCEPT: list[str] = []


def accept_encoding() -> str:
    """The ``Accept-Encoding`` value: every coding we can decode.

    Computed once per process, on first use (not at import: looking for the
    optional modules costs a few file system look-ups).
    """
    if not _ACCEPT:
        codings = ["gzip", "deflate"]
        if _brotli_module() is not None:
            codings.append("br")
        if _zstd_decompressor() is not None:
            codings.append("zstd")
        _ACCEPT.append(", ".join(codings))
    return _ACCEPT[0]


IDENTITY: Final = frozenset({"", "identity"})


def decode_stream(
    content_encoding: str | None, chunks: Iterable[bytes], max_size: int | None = None
) -> Iterator[bytes]:
    """Undo ``content_encoding`` over a stream of body pieces.

    ``max_size`` bounds what each decoding step may produce in all; past it
    ``DecodingError`` is raised, having inflated at most about 1 MiB more.

    An unknown coding is passed through undecoded (the caller asked for
    something we did not advertise, e.g. with its own Accept-Encoding),
    rather than failing the whole response.

    Raises:
        DecodingError: the data is corrupt for its coding, or decodes to
            more than ``max_size`` bytes.
    """
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    decoders: list[Decoder] = []
    for coding in reversed(codings):
        if coding in IDENTITY:
            continue
        decoder = _make(coding, _Limit(max_size))
        if decoder is None:
            # Can't undo this layer, so the ones beneath it can't be undone
            # either: hand the bytes over as they are.
            decoders = []
            break
        decoders.append(decoder)
    if not decoders:
        yield from chunks
        return
    try:
        for chunk in chunks:
            data = chunk
            for decoder in decoders:
                data = decoder.decode(data)
            if data:
                yield data
    finally:
        # Stopping early (or a decoding error) must close the stream that
        # reads the connection now, so it is drained or closed at once.
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    tail = b""
    for decoder in decoders:
        tail = decoder.decode(tail) + decoder.flush() if tail else decoder.flush()
    if tail:
        yield tail
