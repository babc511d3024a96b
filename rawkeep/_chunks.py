"""A body's pieces, cut to the size a caller asked for (``iter_bytes(chunk_size=N)``).

Pieces arrive the size the network and the decoder make them. A caller
who asks for ``chunk_size`` gets exactly that many bytes per piece (the
last may be shorter); closing the re-cut stream early closes the one
beneath it at once, so the connection is drained or closed now, not when
the generator is collected.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Iterator

__all__ = ["arechunk", "check_chunk_size", "one", "rechunk"]


def check_chunk_size(chunk_size: int | None) -> None:
    if chunk_size is not None and chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive int, not {chunk_size!r}")


async def one(content: bytes) -> AsyncGenerator[bytes, None]:
    yield content


async def arechunk(
    chunks: AsyncGenerator[bytes, None], size: int | None
) -> AsyncGenerator[bytes, None]:
    """``rechunk`` for async pieces: exactly ``size`` bytes each (the last
    may be shorter), or as they come. Closed early, it closes ``chunks`` at
    once (the body is drained or closed now, not by the loop's finalizer)."""
    try:
        if size is None:
            async for chunk in chunks:
                yield chunk
            return
        buffer = bytearray()
        async for chunk in chunks:
            buffer += chunk
            while len(buffer) >= size:
                yield bytes(buffer[:size])
                del buffer[:size]
        if buffer:
            yield bytes(buffer)
    finally:
        await chunks.aclose()


def rechunk(chunks: Iterator[bytes], size: int | None) -> Iterator[bytes]:
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
