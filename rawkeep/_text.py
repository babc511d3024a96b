"""A body as text: ``text``, ``json``, ``iter_text``, ``iter_lines`` (and their async twins).

``TextMethods`` gives ``Response`` these, over its bytes (``content``,
``iter_bytes``, ``aiter_bytes``) and its ``encoding``.

Text. The body's pieces are decoded as they come with an incremental
decoder of the response's encoding, errors replaced (as ``Response.text``
does): a character whose bytes are split between two pieces is decoded
whole once its last byte arrives, never as two U+FFFD.

Lines. A line ends at ``\\n``, ``\\r\\n`` or ``\\r`` (the line ends of the
text formats read line by line over HTTP: server-sent events, NDJSON, CSV),
and is given without its end. Other characters ``str.splitlines`` breaks
at (form feed, U+2028...) are text: httpx breaks at them too, since 0.23.2.
A piece ending with ``\\r`` is the only ambiguity: it ends a line, but may
be the first half of ``\\r\\n``. httpx holds such a line back until the
next piece comes; here it is given at once, and a ``\\n`` beginning the
next piece is dropped: the same lines, none of them late (a server-sent
event waits for no further byte). A last line without an end is given when
the body ends; an empty body has no lines.
"""

from __future__ import annotations

import codecs
import re
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator

    from ._headers import Headers

__all__ = ["LineSplitter", "TextMethods"]

#: The three line ends; ``\r\n`` first, so that it is one end, not two.
_LINE_END: Final = re.compile("\r\n|\r|\n")


class LineSplitter:
    """Text in pieces in, whole lines out (see the module docstring)."""

    __slots__ = ("_pending", "_skip_lf")

    def __init__(self) -> None:
        #: The start of a line whose end has not come yet, in pieces (joined
        #: once: a long line in many pieces costs no repeated copies).
        self._pending: list[str] = []
        #: The last piece ended with ``\r``: a ``\n`` next completes it.
        self._skip_lf = False

    def feed(self, text: str) -> list[str]:
        """The lines that ``text`` completes."""
        if not text:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        lines = _LINE_END.split(text)
        rest = lines.pop()  # after the last line end: the start of the next line
        if not lines:
            self._pending.append(rest)
            return []
        if self._pending:
            self._pending.append(lines[0])
            lines[0] = "".join(self._pending)
            self._pending = []
        if rest:
            self._pending.append(rest)
        elif text[-1] == "\r":
            self._skip_lf = True
        return lines

    def end(self) -> list[str]:
        """The last line, if the text did not end with a line end."""
        pending, self._pending = self._pending, []
        return ["".join(pending)] if pending else []


class TextMethods:
    """The text methods of ``Response`` (a base with no state of its own)."""

    __slots__ = ()

    if TYPE_CHECKING:
        # What Response provides.
        @property
        def headers(self) -> Headers: ...
        @property
        def content(self) -> bytes: ...
        def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]: ...
        def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]: ...

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

    def iter_text(self) -> Iterator[str]:
        """The body as text in pieces, decoded as it arrives with
        ``encoding`` (errors replaced, as in ``text``); a character split
        between two pieces comes out whole.

        Raises:
            as for ``iter_bytes``.
        """
        return decode_text(self.iter_bytes(), self.encoding)

    def iter_lines(self) -> Iterator[str]:
        """The body as lines of text, without their line ends (``\\n``,
        ``\\r\\n`` or ``\\r``), each given as soon as its end arrives.

        Raises:
            as for ``iter_bytes``.
        """
        return split_lines(decode_text(self.iter_bytes(), self.encoding))

    def aiter_text(self) -> AsyncIterator[str]:
        """``iter_text()`` for a response from ``AsyncClient``."""
        return adecode_text(self.aiter_bytes(), self.encoding)

    def aiter_lines(self) -> AsyncIterator[str]:
        """``iter_lines()`` for a response from ``AsyncClient``."""
        return asplit_lines(adecode_text(self.aiter_bytes(), self.encoding))


def _decoder(encoding: str) -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder(encoding)(errors="replace")


def decode_text(pieces: Iterator[bytes], encoding: str) -> Generator[str, None, None]:
    """``pieces`` decoded as they come. Closed early, it closes ``pieces``
    at once (the body is then drained or its connection closed)."""
    decoder = _decoder(encoding)
    try:
        for piece in pieces:
            if text := decoder.decode(piece):
                yield text
        if text := decoder.decode(b"", True):
            yield text
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()


def split_lines(texts: Iterator[str]) -> Generator[str, None, None]:
    """The lines of ``texts``, without their ends. Closed early, it closes
    ``texts`` at once."""
    splitter = LineSplitter()
    try:
        for text in texts:
            yield from splitter.feed(text)
        yield from splitter.end()
    finally:
        close = getattr(texts, "close", None)
        if close is not None:
            close()


async def adecode_text(pieces: AsyncIterator[bytes], encoding: str) -> AsyncGenerator[str, None]:
    """``decode_text`` for async pieces."""
    decoder = _decoder(encoding)
    try:
        async for piece in pieces:
            if text := decoder.decode(piece):
                yield text
        if text := decoder.decode(b"", True):
            yield text
    finally:
        aclose = getattr(pieces, "aclose", None)
        if aclose is not None:
            await aclose()


async def asplit_lines(texts: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """``split_lines`` for async text."""
    splitter = LineSplitter()
    try:
        async for text in texts:
            for line in splitter.feed(text):
                yield line
        for line in splitter.end():
            yield line
    finally:
        aclose = getattr(texts, "aclose", None)
        if aclose is not None:
            await aclose()
