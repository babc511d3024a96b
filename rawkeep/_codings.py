"""One Content-Encoding layer each: gzip, deflate, br, zstd, decoded in bounded steps.

A layer is pushed the coded bytes as they arrive (``feed``), told when they
end (``end``), and yields what they decode to, asking its decompressor for
at most ``DECODE_STEP`` bytes at a time, each step counted against the
body's ``max_decoded_size`` before the next is taken. ``_decoders`` stacks
the layers a ``Content-Encoding`` names and cuts their steps into pieces.

gzip and deflate come with the standard library (``zlib``). br needs a
``brotli`` or ``brotlicffi`` module that can bound its output (1.2 or
later; an older one is fed ``BROTLI_SLICE`` bytes at a time), zstd
``compression.zstd`` (Python 3.14) or ``zstandard``. Nothing is added as a
dependency: ``make_decoder`` returns None for a coding it can't undo here.
"""

from __future__ import annotations

import importlib.util
import zlib
from typing import TYPE_CHECKING, Any, Final, Protocol

from ._exceptions import DecodingError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["DECODE_STEP", "DecodeLimit", "Decoder", "accept_encoding", "make_decoder"]


class Decoder(Protocol):
    """One coding's layer. Each iterator it returns must be read to its end
    before the next call: a layer keeps its place in its input there."""

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Decode ``data``, the next bytes of the coded stream, one step (at
        most ``DECODE_STEP`` bytes, some modules overshoot: see their
        classes) at a time; empty steps are left out."""
        ...

    def end(self) -> Iterator[bytes]:
        """The steps still pending once all input has been fed; raises
        ``DecodingError`` (as it is read) when the stream was cut short."""
        ...


#: Most bytes one decompressor call may produce (zlib's ``max_length``). Each
#: step is counted against ``max_decoded_size`` and handed on before the next
#: is taken, so a layer holds about one step. Larger than a piece because
#: inflating is about 10 % faster asked for 1 MiB at a time than for 64 KiB
#: (fewer, longer runs of zlib's fast loop), and cutting a step into pieces
#: costs less than that.
DECODE_STEP: Final = 1024 * 1024

#: Input fed per call to a brotli module too old to bound its output
#: (brotli or brotlicffi before 1.2): see `BrotliDecoder`.
BROTLI_SLICE: Final = 64

#: The first two bytes of every gzip member (RFC 1952 section 2.3.1).
GZIP_MAGIC: Final = b"\x1f\x8b"


class DecodeLimit:
    """The decoded-size budget of one decoding layer (``max_decoded_size``)."""

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
    that ends before its end-of-stream marker is truncated: it raises rather
    than hand over part of the body as if it were all of it.
    """

    def __init__(self, coding: str, limit: DecodeLimit) -> None:
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

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._done:
            return  # read on, so the body ends as it should
        if self._head:
            data, self._head = self._head + data, b""
        if self._obj is None:
            if len(data) < 2:
                self._head = data
                return
            self._start(data)
        try:
            yield from self._inflate(data)
        except zlib.error as exc:
            raise DecodingError(f"invalid {self._coding} data: {exc}") from exc

    def _inflate(self, data: bytes) -> Iterator[bytes]:
        # One step at a time: zlib is asked for at most DECODE_STEP bytes, and
        # what it could not consume yet (``unconsumed_tail``) waits for the
        # next step, so 64 KiB of zeros that inflate to 64 MiB are inflated
        # in 64 steps, each counted and handed on before the next is taken.
        obj = self._obj
        step = DECODE_STEP
        while True:
            if obj.eof:
                if not data:
                    return
                # The stream ended with bytes still coming: the next member
                # of a multi-member gzip body, or bytes that belong to no
                # stream, which browsers ignore and so do we.
                if self._coding == "gzip" and data[:2] == GZIP_MAGIC:
                    obj = self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
                elif self._coding == "gzip" and data == GZIP_MAGIC[:1]:
                    self._head = data  # maybe a member's first byte: wait for more
                    return
                else:
                    self._done = True
                    return
            piece = obj.decompress(data, step)
            data = obj.unused_data if obj.eof else obj.unconsumed_tail
            if piece:
                self._limit.count(len(piece), self._coding)
                yield piece
            # A short piece with no input left: zlib needs more input. A full
            # one may have more output pending, even with no input left.
            if len(piece) < step and not data:
                return

    def end(self) -> Iterator[bytes]:
        if self._obj is None:
            if self._head:
                raise DecodingError(f"{self._coding} body too short to be valid")
            return  # an empty body: nothing was compressed
        # All output was taken step by step, so nothing is left to flush; a
        # lone byte held back after a complete member is trailing junk.
        if not self._obj.eof:
            raise DecodingError(f"{self._coding} body ends before its end-of-stream marker")
        yield from ()


class BrotliDecoder:
    """br through the ``brotli`` or ``brotlicffi`` module.

    From version 1.2 both modules take ``output_buffer_limit``: the decoder
    then stops once that much output is ready, keeps the rest of its input,
    and gives more on calls with no input until ``can_accept_more_data()``;
    each step is bounded as zlib's are (brotli's may overshoot the limit by
    one buffer block, to about 2 MiB; brotlicffi's do not).

    Older versions decode all they are given in one call, and brotli can
    describe 16 MiB of output in a few bytes. Such a module is not
    advertised; a br body that comes anyway (the caller's own
    ``Accept-Encoding``, or a server that ignores it) is decoded with the
    input fed ``BROTLI_SLICE`` bytes at a time. The pieces the caller gets
    are still cut to ``PIECE_SIZE``, but one call may expand its 64 bytes to
    tens of MiB (40 MiB measured with a bomb of zeros) before
    ``max_decoded_size`` is checked, and decoding is two to three times
    slower than in one call.
    """

    def __init__(self, obj: Any, limit: DecodeLimit) -> None:
        self._obj = obj
        self._limit = limit
        self._process = getattr(obj, "process", None) or obj.decompress
        self._can_bound = hasattr(obj, "can_accept_more_data")

    def _call(self, data: bytes) -> bytes:
        try:
            if self._can_bound:
                out = self._process(data, output_buffer_limit=DECODE_STEP)
            else:
                out = self._process(data)
        except Exception as exc:
            raise DecodingError(f"invalid br data: {exc}") from exc
        out = bytes(out)
        self._limit.count(len(out), "br")
        return out

    def feed(self, data: bytes) -> Iterator[bytes]:
        if not self._can_bound:
            for start in range(0, len(data), BROTLI_SLICE):
                if out := self._call(data[start : start + BROTLI_SLICE]):
                    yield out
            return
        if out := self._call(data):
            yield out
        can_accept_more_data = self._obj.can_accept_more_data
        while not can_accept_more_data():
            if out := self._call(b""):
                yield out

    def end(self) -> Iterator[bytes]:
        # Output may still be pending once all input is in.
        if self._can_bound:
            while out := self._call(b""):
                yield out


class StdlibZstdDecoder:
    """zstd through ``compression.zstd`` (Python 3.14): its ``decompress``
    takes ``max_length`` and says through ``needs_input`` whether more output
    is pending, so each step is bounded as zlib's are. Bytes after the end of
    the frame are ignored, as they are after a gzip stream."""

    def __init__(self, obj: Any, limit: DecodeLimit) -> None:
        self._obj = obj
        self._limit = limit

    def _call(self, data: bytes) -> bytes:
        try:
            out: bytes = self._obj.decompress(data, DECODE_STEP)
        except Exception as exc:
            raise DecodingError(f"invalid zstd data: {exc}") from exc
        self._limit.count(len(out), "zstd")
        return out

    def feed(self, data: bytes) -> Iterator[bytes]:
        obj = self._obj
        if obj.eof:
            return
        if out := self._call(data):
            yield out
        while not obj.eof and not obj.needs_input:
            if out := self._call(b""):
                yield out

    def end(self) -> Iterator[bytes]:
        return iter(())  # every step was taken as its input came


class _NeedInput(Exception):
    """Raised to zstandard's iterator when all that was fed has been read."""


class _Fed:
    """The file zstandard's ``read_to_iter`` reads: the bytes fed and not yet
    read. With none, it raises `_NeedInput` until the body has ended, then
    reads as the end of the file."""

    __slots__ = ("data", "ended")

    def __init__(self) -> None:
        self.data = b""
        self.ended = False

    def read(self, size: int = -1) -> bytes:
        data = self.data
        if not data:
            if self.ended:
                return b""
            raise _NeedInput
        if 0 <= size < len(data):
            data, self.data = data[:size], data[size:]
        else:
            self.data = b""
        return data


class ZstandardDecoder:
    """zstd through the ``zstandard`` module. Its ``decompressobj`` has no
    ``max_length``, but ``read_to_iter`` yields output in steps of at most
    ``write_size`` bytes while reading input through a ``read`` method, so it
    is handed a `_Fed` file. When the input fed so far is used up, ``read``
    raises `_NeedInput`: the C extension's iterator then gives up the call
    with its state kept, and the next feed resumes it (``zstandard_decoder``
    uses this module only with that backend). Decoding stops at the end of
    the first frame, as ``decompressobj`` does; the rest is ignored."""

    def __init__(self, dctx: Any, limit: DecodeLimit) -> None:
        self._limit = limit
        self._source = _Fed()
        self._outputs = dctx.read_to_iter(
            self._source, read_size=DECODE_STEP, write_size=DECODE_STEP
        )
        self._done = False  # the frame ended; anything more is ignored

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._done:
            return iter(())
        self._source.data = data
        return self._steps()

    def end(self) -> Iterator[bytes]:
        self._source.ended = True
        return iter(()) if self._done else self._steps()

    def _steps(self) -> Iterator[bytes]:
        outputs = self._outputs
        while True:
            try:
                out = bytes(next(outputs))
            except _NeedInput:
                return
            except StopIteration:
                self._done = True
                self._source.data = b""
                return
            except Exception as exc:
                raise DecodingError(f"invalid zstd data: {exc}") from exc
            if out:
                self._limit.count(len(out), "zstd")
                yield out


def _can_bound(module: Any) -> bool:
    """Whether a brotli module takes ``output_buffer_limit`` (1.2 and later)."""
    return hasattr(module.Decompressor, "can_accept_more_data")


def _brotli_module() -> Any:
    """brotli or brotlicffi, preferring one that can bound its output."""
    found = None
    for name in ("brotli", "brotlicffi"):
        if importlib.util.find_spec(name) is not None:
            module = importlib.import_module(name)
            if _can_bound(module):
                return module
            found = found or module
    return found


def _zstd_decoder(limit: DecodeLimit) -> Decoder | None:
    # compression.zstd is in the standard library from Python 3.14.
    if importlib.util.find_spec("compression") is not None:
        try:
            from compression import zstd  # type: ignore[import-not-found]

            return StdlibZstdDecoder(zstd.ZstdDecompressor(), limit)
        except ImportError:
            pass
    if importlib.util.find_spec("zstandard") is not None:
        import zstandard  # type: ignore[import-not-found]

        # Only the C extension's iterator survives `_NeedInput` (the cffi
        # backend's is a generator, which an exception ends).
        if getattr(zstandard, "backend", None) == "cext":
            return ZstandardDecoder(zstandard.ZstdDecompressor(), limit)
    return None


def make_decoder(coding: str, limit: DecodeLimit) -> Decoder | None:
    if coding in ("gzip", "x-gzip"):
        return ZlibDecoder("gzip", limit)
    if coding == "deflate":
        return ZlibDecoder("deflate", limit)
    if coding == "br":
        module = _brotli_module()
        return None if module is None else BrotliDecoder(module.Decompressor(), limit)
    if coding == "zstd":
        return _zstd_decoder(limit)
    return None


_ACCEPT: list[str] = []


def accept_encoding() -> str:
    """The ``Accept-Encoding`` value: every coding we can decode in bounded
    steps.

    Computed once per process, on first use (not at import: looking for the
    optional modules costs a few file system look-ups).
    """
    if not _ACCEPT:
        codings = ["gzip", "deflate"]
        brotli = _brotli_module()
        if brotli is not None and _can_bound(brotli):
            codings.append("br")
        if _zstd_decoder(DecodeLimit(None)) is not None:
            codings.append("zstd")
        _ACCEPT.append(", ".join(codings))
    return _ACCEPT[0]
