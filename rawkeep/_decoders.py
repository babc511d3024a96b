"""Content-Encoding decoders: gzip, deflate, and br / zstd when available.

The client advertises in ``Accept-Encoding`` exactly the codings it can
decode in bounded steps: gzip and deflate always (``zlib`` is in the
standard library), br when a ``brotli`` or ``brotlicffi`` module of version
1.2 or later is importable, zstd when ``compression.zstd`` (Python 3.14) or
``zstandard`` is. Nothing is added as a dependency: a coding whose module is
absent is simply not advertised.

Decoding is pushed: the reader of the body hands each piece it receives to
a `BodyDecoder` (``feed``) and says when the body has ended (``end``), so a
reader that waits for the connection with ``await`` decodes by the same
rules as one that blocks. Each coding is one layer: fed a piece, it asks
its decompressor for at most ``DECODE_STEP`` bytes at a time and hands each
step on before it takes the next. Several codings (``Content-Encoding:
gzip, br``) were applied in order, so they are undone in reverse: each step
of the outermost layer is fed to the next layer, and undone there step by
step, before the outer layer takes its next step. The last layer's steps
are cut into pieces of at most ``PIECE_SIZE`` bytes for the caller. What
``feed`` and ``end`` return are iterators that do this lazily, one step at
a time as they are read. Whatever the compression ratio, and however the
codings are nested, no piece is larger than ``PIECE_SIZE`` and each layer
holds about one step: a 2 KB body that inflates to 1 GiB streams through
the same few MiB as any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ._codings import DECODE_STEP, DecodeLimit, make_decoder
from ._exceptions import DecodingError

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from ._codings import Decoder

__all__ = ["DECODE_STEP", "PIECE_SIZE", "BodyDecoder", "decode_stream"]


#: Largest piece ``decode_stream`` yields (``iter_bytes()`` from a compressed
#: body), whatever the compression ratio.
PIECE_SIZE: Final = 64 * 1024

#: Most codings undone for one body. Servers apply one, rarely two; every
#: layer costs its decompressor's state (about 40 KiB for zlib) and a step
#: in flight, so a header listing thousands would be a bomb of its own.
MAX_CODINGS: Final = 5

IDENTITY: Final = frozenset({"", "identity"})


def _decoders(content_encoding: str | None, max_size: int | None) -> list[Decoder]:
    """The layers that undo ``content_encoding``, outermost first; none when
    one of them can't be undone."""
    codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
    decoders: list[Decoder] = []
    for coding in reversed(codings):
        if coding in IDENTITY:
            continue
        decoder = make_decoder(coding, DecodeLimit(max_size))
        if decoder is None:
            # Can't undo this layer, so the ones beneath it can't be undone
            # either: hand the bytes over as they are.
            return []
        decoders.append(decoder)
    if len(decoders) > MAX_CODINGS:
        raise DecodingError(
            f"Content-Encoding lists {len(decoders)} codings; at most {MAX_CODINGS}"
            " are undone (a decompression bomb of its own)"
        )
    return decoders


def _through(decoder: Decoder, steps: Iterator[bytes]) -> Iterator[bytes]:
    """``steps`` fed to ``decoder`` one at a time, each undone before the
    next is taken."""
    feed = decoder.feed
    for step in steps:
        yield from feed(step)


class BodyDecoder:
    """Undoes a body's ``Content-Encoding`` as its pieces are pushed in.

    ``feed`` each piece of the body as it is received, then call ``end``
    once it is all in; read each iterator they return to its end before the
    next call. Each piece they yield is at most ``piece_size`` bytes
    (``None``: whole steps, for a caller that joins them anyway). Each layer
    holds about one ``DECODE_STEP`` of output at a time. ``max_size`` bounds
    what each decoding layer may produce in all; past it ``DecodingError``
    is raised, having decoded at most one step more.

    An unknown coding is passed through undecoded (the caller asked for
    something we did not advertise, e.g. with its own Accept-Encoding),
    rather than failing the whole response: ``passthrough`` is then true,
    as it is with no coding or only ``identity``, and ``feed`` hands each
    piece back as it is, so a caller may skip it altogether.

    Raises:
        DecodingError: the data is corrupt for its coding, decodes to more
            than ``max_size`` bytes, or has more than ``MAX_CODINGS`` codings
            (this last one when constructed; the others as the iterators of
            ``feed`` and ``end`` are read).
    """

    __slots__ = ("_decoders", "_piece_size", "passthrough")

    def __init__(
        self,
        content_encoding: str | None,
        max_size: int | None = None,
        piece_size: int | None = PIECE_SIZE,
    ) -> None:
        self._decoders = _decoders(content_encoding, max_size) if content_encoding else []
        self._piece_size = piece_size
        #: Nothing to undo: the body's pieces are its content as they are.
        self.passthrough = not self._decoders

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The decoded pieces ``data``, the next bytes of the body, gives."""
        decoders = self._decoders
        if not decoders:
            return iter((data,) if data else ())
        return self._pieces(decoders[0].feed(data), 1)

    def end(self) -> Iterator[bytes]:
        """The decoded pieces still pending once the whole body was fed;
        ``DecodingError`` (as it is read) when the body was cut short."""
        return self._ends()

    def _ends(self) -> Iterator[bytes]:
        # Each layer's last steps go through the layers beneath it before
        # those are told the end in turn.
        for index, decoder in enumerate(self._decoders):
            yield from self._pieces(decoder.end(), index + 1)

    def _pieces(self, steps: Iterator[bytes], below: int) -> Iterator[bytes]:
        """``steps`` undone by the layers from index ``below`` on, cut into
        pieces of at most ``piece_size``."""
        for decoder in self._decoders[below:]:
            steps = _through(decoder, steps)
        size = self._piece_size
        return steps if size is None else _cut(steps, size)


def _cut(steps: Iterator[bytes], size: int) -> Iterator[bytes]:
    for step in steps:
        if len(step) <= size:
            yield step
        else:
            for start in range(0, len(step), size):
                yield step[start : start + size]


def decode_stream(
    content_encoding: str | None,
    chunks: Iterable[bytes],
    max_size: int | None = None,
    piece_size: int | None = PIECE_SIZE,
) -> Iterator[bytes]:
    """Undo ``content_encoding`` over a stream of body pieces: a
    `BodyDecoder` fed each of ``chunks`` (see it for the pieces yielded and
    the errors raised); undecoded pieces pass as they come."""
    try:
        decoder = BodyDecoder(content_encoding, max_size, piece_size)
        if decoder.passthrough:
            yield from chunks
            return
        feed = decoder.feed
        for chunk in chunks:
            yield from feed(chunk)
        yield from decoder.end()
    finally:
        # Stopping early (or a decoding error) must close the stream that
        # reads the connection now, so it is drained or closed at once.
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
