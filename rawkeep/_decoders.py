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


class ZlibDecoder:
    """gzip, or deflate in either of its two real-world forms.

    RFC 9110 section 8.4.1.2 defines ``deflate`` as the zlib format, but
    some servers send a raw deflate stream instead; the first bytes tell
    which, so try zlib and fall back to raw on the first failure.
    """

    def __init__(self, coding: str) -> None:
        self._coding = coding
        wbits = 16 + zlib.MAX_WBITS if coding == "gzip" else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(wbits)
        self._first = coding == "deflate"

    def decode(self, data: bytes) -> bytes:
        try:
            if self._first:
                self._first = False
                try:
                    return self._obj.decompress(data)
                except zlib.error:
                    self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            return self._obj.decompress(data)
        except zlib.error as exc:
            raise DecodingError(f"invalid {self._coding} data: {exc}") from exc

    def flush(self) -> bytes:
        try:
            return self._obj.flush()
        except zlib.error as exc:  # pragma: no cover - flush rarely fails
            raise DecodingError(f"invalid {self._coding} data: {exc}") from exc


class ModuleDecoder:
    """br or zstd through whichever module provides it."""

    def __init__(self, coding: str, obj: Any) -> None:
        self._coding = coding
        self._obj = obj

    def decode(self, data: bytes) -> bytes:
        try:
            method = getattr(self._obj, "process", None) or self._obj.decompress
            return bytes(method(data))
        except Exception as exc:
            raise DecodingError(f"invalid {self._coding} data: {exc}") from exc

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


def _make(coding: str) -> Decoder | None:
    if coding in ("gzip", "x-gzip"):
        return ZlibDecoder("gzip")
    if coding == "deflate":
        return ZlibDecoder("deflate")
    if coding == "br":
        module = _brotli_module()
        return None if module is None else ModuleDecoder("br", module.Decompressor())
    if coding == "zstd":
        obj = _zstd_decompressor()
        return None if obj is None else ModuleDecoder("zstd", obj)
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


def decode_stream(content_encoding: str | None, chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Undo ``content_encoding`` over a stream of body pieces.

    An unknown coding is passed through undecoded (the caller asked for
    something we did not advertise, e.g. with its own Accept-Encoding),
    rather than failing the whole response.

    Raises:
        DecodingError: the data is corrupt for its coding.
    """
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    decoders: list[Decoder] = []
    for coding in reversed(codings):
        if coding in IDENTITY:
            continue
        decoder = _make(coding)
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
