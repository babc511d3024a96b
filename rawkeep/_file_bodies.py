"""File bodies: how a binary file is measured, rewound and streamed.

A file given as a body (``content=``, or a part of ``files=``) is never
read whole: it goes out in ``FILE_BLOCK`` pieces. Its size, when the
system can tell, becomes the Content-Length; where it started is kept, so
that a retry or a 307/308 redirect can rewind it and send it again (a file
that can't seek makes the request one that can't be replayed).
"""

from __future__ import annotations

import os
from typing import IO, TYPE_CHECKING, Final, TypeGuard

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["FILE_BLOCK", "file_size", "is_file_body", "read_blocks", "start_of"]

#: Block size for streaming a file body.
FILE_BLOCK: Final = 64 * 1024


def is_file_body(body: object) -> TypeGuard[IO[bytes]]:
    """Whether ``body`` is read like a file (it has ``read``)."""
    return hasattr(body, "read") and not isinstance(body, bytes | str)


def start_of(body: IO[bytes]) -> int | None:
    """Where a file body starts, to rewind it to; None when it can't seek."""
    try:
        return body.tell() if body.seekable() else None
    except (AttributeError, OSError):
        return None


def read_blocks(body: IO[bytes]) -> Iterator[bytes]:
    """``body`` from where it is, in ``FILE_BLOCK`` pieces.

    Raises:
        TypeError: it was opened in text mode.
    """
    while block := body.read(FILE_BLOCK):
        if not isinstance(block, bytes):
            raise TypeError("file bodies must be opened in binary mode")
        yield block


def file_size(body: IO[bytes]) -> int | None:
    """Bytes left in a file body: from fstat for a regular file, by seeking
    for an in-memory one; None when unknown (a pipe, a socket)."""
    import stat

    try:
        info = os.fstat(body.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        return info.st_size - body.tell()
    except (AttributeError, OSError, ValueError):
        pass  # no usable file descriptor (io.BytesIO raises UnsupportedOperation)
    try:
        if not body.seekable():
            return None
        position = body.tell()
        end = body.seek(0, os.SEEK_END)
        body.seek(position)
        return end - position
    except (AttributeError, OSError, ValueError):
        return None
