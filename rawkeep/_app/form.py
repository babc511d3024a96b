"""``-F``/``--form``: curl's multipart form parts, on the library's ``files=``.

Each ``-F`` is one part, sent in the order given (every part goes through
``files=`` as a ``(filename, content, content_type)`` tuple, so text fields
and files keep their order, as curl sends them):

====================================  ==========================================
``name=value``                        a text field
``name=@PATH``                        a file part: filename = PATH's last
                                      component, content type guessed from it
                                      (``application/octet-stream`` if unknown)
``name=<PATH``                        a text field whose value is PATH's content
``...;type=TYPE``                     the part's Content-Type
``...;filename=NAME``                 the filename sent instead
====================================  ==========================================

``@-`` and ``<-`` read stdin, once, when the command line is checked (so a
``--repeat`` or a second URL sends the same bytes). A value, path or
filename holding a ``;`` (or starting with ``"``) is written in double
quotes, with ``\\"`` and ``\\\\`` inside: ``-F 'msg="a;b"'``. Any other
``;word`` is refused (curl warns and drops it): a typo should not send a
different form than meant.

Files are checked when the command line is (a missing or unreadable one is
exit 2 before any socket), and opened again for each request: the library
streams them, never reading one whole.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, TypeAlias

from .._exceptions import LocalProtocolError
from .._headers import Headers
from .._multipart import encode_multipart

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

__all__ = ["FormEntry", "FormError", "FormPart", "check_form", "open_form", "parse_form"]

#: One ``files=`` entry: ``(name, (filename, content, content_type))``.
FormEntry: TypeAlias = "tuple[str, tuple[str | None, bytes | IO[bytes], str | None]]"


class FormError(ValueError):
    """A ``-F`` that can't be used (the caller makes it a usage error)."""


@dataclass(frozen=True, slots=True)
class FormPart:
    """One ``-F``, checked: its content is ``data``, or the file at ``path``."""

    name: str
    data: bytes | None
    path: str | None
    filename: str | None
    content_type: str | None


def parse_form(text: str, stdin: IO[bytes] | None = None) -> FormPart:
    """One ``-F`` argument, its file checked (see the module docstring).

    Args:
        stdin: where ``@-`` and ``<-`` read from (default ``sys.stdin``).

    Raises:
        FormError: bad syntax, an unknown ``;word``, an unreadable file.
    """
    name, equals, rest = text.partition("=")
    if not equals or not name:
        raise FormError(f"bad -F {text!r}: expected NAME=VALUE, NAME=@FILE or NAME=<FILE")
    kind = rest[:1] if rest[:1] in ("@", "<") else ""
    value, rest = _word(rest[len(kind) :], text)
    options: dict[str, str] = {}
    while rest:
        rest = rest[1:].lstrip(" ")  # past the ';'
        key, equals, after = rest.partition("=")
        if key not in ("type", "filename") or not equals:
            raise FormError(
                f"bad -F {text!r}: unknown ';{rest}' (only ;type= and ;filename=; put a"
                " value holding ';' in double quotes: name=\"a;b\")"
            )
        options[key], rest = _word(after, text)
    part = FormPart(name, value.encode(), None, options.get("filename"), options.get("type"))
    if kind and value == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        part = FormPart(name, stream.read(), None, part.filename, part.content_type)
    elif kind:
        _check_readable(value, text)
        part = FormPart(name, None, value, part.filename, part.content_type)
    if kind == "@" and part.filename is None:
        filename = "-" if value == "-" else os.path.basename(value)
        part = FormPart(name, part.data, part.path, filename, part.content_type)
    return part


def _word(text: str, whole: str) -> tuple[str, str]:
    """A value up to the next ';' (or a double-quoted one), and what is left."""
    if not text.startswith('"'):
        word, semicolon, rest = text.partition(";")
        return word, semicolon + rest
    chars: list[str] = []
    index = 1
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text):
            chars.append(text[index + 1])
            index += 2
            continue
        if char == '"':
            rest = text[index + 1 :]
            if rest and not rest.startswith(";"):
                raise FormError(f"bad -F {whole!r}: text after a closing quote")
            return "".join(chars), rest
        chars.append(char)
        index += 1
    raise FormError(f"bad -F {whole!r}: a double quote is not closed")


def _check_readable(path: str, whole: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise FormError(f"can't read the -F file {path!r}: {exc.strerror}") from exc


def check_form(parts: Sequence[FormPart], headers: Sequence[tuple[str, str]]) -> None:
    """Make the form's body once without its files, as the library will
    make it: a ``;type=`` with a control character, or a ``-H
    Content-Type`` without a usable boundary, is found now.

    Raises:
        FormError: the library refused it (its words).
    """
    try:
        encode_multipart(Headers(headers), [_entry(part, b"") for part in parts], None)
    except (ValueError, TypeError, LocalProtocolError) as exc:
        raise FormError(f"-F: {exc}") from exc


@contextlib.contextmanager
def open_form(
    parts: Sequence[FormPart] | None,
) -> Iterator[list[FormEntry] | None]:
    """The ``files=`` of one request, its files open for it; None without -F.

    Raises:
        FormError: a file can't be opened any more.
    """
    if parts is None:
        yield None
        return
    with contextlib.ExitStack() as stack:
        entries = []
        for part in parts:
            content: bytes | IO[bytes]
            if part.path is None:
                content = part.data or b""
            else:
                try:
                    content = stack.enter_context(open(part.path, "rb"))
                except OSError as exc:
                    raise FormError(
                        f"can't read the -F file {part.path!r}: {exc.strerror}"
                    ) from exc
            entries.append(_entry(part, content))
        yield entries


def _entry(part: FormPart, content: bytes | IO[bytes]) -> FormEntry:
    return part.name, (part.filename, content, part.content_type)
