"""``files=``: a ``multipart/form-data`` body (RFC 7578), streamed.

The body is a sequence of parts, each opened by ``--boundary`` and a few
part headers, and the whole closed by ``--boundary--`` (the layout httpx
and browsers send). The plain fields of ``data=`` come first, then the
files, in the order given.

Choices, and why:

- Streamed: a file part is read in ``FILE_BLOCK`` pieces while it is
  sent, never whole, so a large upload costs no memory. When every part's
  size is known (bytes, regular files, in-memory files) the body gets a
  Content-Length; a pipe makes it chunked.
- The boundary is 32 random hex digits from ``secrets``: it can't be
  predicted, so a file's content can't end the part early by containing
  it (and the odds of an accidental match are 2**-128).
- Names and file names are quoted as the HTML standard says for form
  submission: ``"`` becomes ``%22``, CR ``%0D``, LF ``%0A`` (other C0
  controls and DEL are escaped the same way). A file name can then never
  close the quoted string or start a part header of its own; non-ASCII
  text goes as UTF-8, as browsers send it.
- Everything is checked when the request is built, before any I/O: the
  shape of each value, text-mode files, a content type with a control
  character.
- Replayable (for a retry or a 307/308 redirect) only when every file can
  seek: each attempt rewinds them to where they started.
"""

from __future__ import annotations

import io
import os
import re
import secrets
from typing import IO, TYPE_CHECKING, Final, TypeAlias

from ._exceptions import LocalProtocolError
from ._fields import field_pairs, named_items
from ._file_bodies import file_size, is_file_body, read_blocks, start_of

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping, Sequence

    from ._headers import Headers

__all__ = ["FilesInput", "MultipartBody", "encode_multipart"]

#: One file's content: bytes, text (sent as UTF-8) or a binary file.
FileContent: TypeAlias = "bytes | str | IO[bytes]"
#: One ``files=`` value: the content alone, or ``(filename, content)``, or
#: ``(filename, content, content_type)`` (httpx's forms; a filename of
#: None sends the part without one).
FileValue: TypeAlias = (
    "FileContent | tuple[str | None, FileContent] | tuple[str | None, FileContent, str | None]"
)
#: What ``files=`` accepts: a mapping, or pairs for a name given twice.
FilesInput: TypeAlias = "Mapping[str, FileValue] | Sequence[tuple[str, FileValue]]"

#: The file name of a part whose content has none (httpx's choice).
DEFAULT_FILENAME: Final = "upload"

# RFC 2046 section 5.1.1: 1 to 70 of these, not ending in a space.
_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,./:=? -]{0,69}[0-9A-Za-z'()+_,./:=?-]$")
# What may not appear raw in a quoted name: the quote, and every control.
_UNSAFE = re.compile(r'["\x00-\x1f\x7f]')


class _Part:
    """One part: its head (boundary line and part headers), its content,
    and, for a file, where it starts and how much of it is left."""

    __slots__ = ("content", "head", "size", "start")

    def __init__(self, head: bytes, content: bytes | IO[bytes]) -> None:
        self.head = head
        self.content = content
        self.start: int | None = None
        self.size: int | None = len(content) if isinstance(content, bytes) else None
        if not isinstance(content, bytes):
            self.start = start_of(content)
            self.size = file_size(content)


class MultipartBody:
    """A ``multipart/form-data`` body: iterate it for its bytes, once per
    attempt (each iteration rewinds the files to where they started)."""

    __slots__ = ("_parts", "_tail", "content_type", "is_replayable", "size")

    def __init__(self, parts: list[_Part], boundary: str) -> None:
        self._parts = parts
        self._tail = f"--{boundary}--\r\n".encode("ascii")
        #: The Content-Type header value, with the boundary.
        self.content_type = f"multipart/form-data; boundary={boundary}"
        #: Every file can seek back to its start.
        self.is_replayable = all(
            isinstance(p.content, bytes) or p.start is not None for p in parts
        )
        sizes = [p.size for p in parts]
        #: Bytes in the whole body, or None when a file's size is unknown.
        self.size: int | None = None
        if None not in sizes:
            heads = sum(len(p.head) + 2 for p in parts)  # + the CRLF closing each part
            self.size = heads + sum(size for size in sizes if size is not None) + len(self._tail)

    def __iter__(self) -> Iterator[bytes]:
        for part in self._parts:
            content = part.content
            if isinstance(content, bytes):
                yield part.head + content + b"\r\n"
                continue
            yield part.head
            if part.start is not None:
                content.seek(part.start)
            yield from read_blocks(content)
            yield b"\r\n"
        yield self._tail


def encode_multipart(headers: Headers, files: FilesInput, data: object) -> MultipartBody:
    """The body for ``files=`` (and ``data=`` fields beside them); sets its
    Content-Type in ``headers`` unless one with a boundary is there.

    Raises:
        TypeError: a value of the wrong shape or type (named), a file
            opened in text mode, ``data`` that is not a form.
        ValueError: a Content-Type header without a usable boundary.
        LocalProtocolError: a content type with a control character.
    """
    boundary = _boundary(headers)
    parts = []
    if data is not None:
        for name, value in field_pairs(data, "data"):
            head = f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'
            parts.append(_Part(head.encode(), value.encode()))
    for file_name, file_value in named_items(files, "files", "file"):
        parts.append(_file_part(boundary, file_name, file_value))
    body = MultipartBody(parts, boundary)
    if "content-type" not in headers:
        headers["Content-Type"] = body.content_type
    return body


def _boundary(headers: Headers) -> str:
    """A caller's own boundary, from a Content-Type they set, or a new one."""
    given = headers.get("content-type")
    if given is None:
        return secrets.token_hex(16)
    for param in given.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            value = value.strip('"')
            if _BOUNDARY.match(value):
                return value
            raise ValueError(f"the Content-Type's boundary {value!r} is not a valid one")
    raise ValueError(
        "a Content-Type header given with files= must carry the boundary"
        " (multipart/form-data; boundary=...); leave it out and rawkeep writes it"
    )


def _file_part(boundary: str, name: str, value: object) -> _Part:
    """The part for one ``files=`` entry (see ``FileValue``)."""
    content_type: object = None
    if isinstance(value, tuple):
        if len(value) not in (2, 3):
            raise TypeError(
                f"files= value for {name!r} must be (filename, content) or (filename,"
                f" content, content_type); per-part headers are not supported, not {value!r}"
            )
        filename, content = value[0], value[1]
        content_type = value[2] if len(value) == 3 else None
        if filename is not None and not isinstance(filename, str):
            raise TypeError(f"files= filename for {name!r} must be a str or None: {filename!r}")
    else:
        filename, content = _default_filename(value), value
    body = _content(name, content)
    if content_type is None and filename is not None:
        content_type = _guess_type(filename)
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"'
    if filename is not None:
        head += f'; filename="{_quote(filename)}"'
    if content_type is not None:
        head += f"\r\nContent-Type: {_checked_type(name, content_type)}"
    return _Part(f"{head}\r\n\r\n".encode(), body)


def _content(name: str, content: object) -> bytes | IO[bytes]:
    if isinstance(content, bytes):
        return content
    if isinstance(content, bytearray | memoryview):
        return bytes(content)
    if isinstance(content, str):
        return content.encode()
    if isinstance(content, io.TextIOBase):
        raise TypeError(f"files= file for {name!r} is open in text mode: open it with 'rb'")
    if is_file_body(content):
        return content
    raise TypeError(
        f"files= content for {name!r} must be bytes, str or a binary file, not"
        f" {type(content).__name__}"
    )


def _default_filename(content: object) -> str:
    """A file's own name (its last component), else ``DEFAULT_FILENAME``."""
    name = getattr(content, "name", None)
    if isinstance(name, str | bytes) and is_file_body(content):
        return os.path.basename(os.fsdecode(name)) or DEFAULT_FILENAME
    return DEFAULT_FILENAME


def _guess_type(filename: str) -> str:
    import mimetypes  # reads the system's tables: only when a file is sent

    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def _checked_type(name: str, content_type: object) -> str:
    if not isinstance(content_type, str):
        raise TypeError(f"files= content type for {name!r} must be a str: {content_type!r}")
    if _UNSAFE.search(content_type):
        raise LocalProtocolError(
            f"files= content type for {name!r} contains a control character: {content_type!r}"
        )
    return content_type


def _quote(text: str) -> str:
    """``text`` for a quoted form-data parameter (see the module docstring)."""
    return _UNSAFE.sub(lambda match: f"%{ord(match.group()):02X}", text)
