"""Lines and text from a body in pieces, wherever the pieces are cut."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import pytest

from rawkeep._text import LineSplitter, decode_text, split_lines

if TYPE_CHECKING:
    from collections.abc import Iterator

#: text -> its lines: \n, \r\n and \r end a line; nothing else does.
CASES = {
    "": [],
    "a": ["a"],
    "a\n": ["a"],
    "\n": [""],
    "\r": [""],
    "\r\n": [""],
    "\n\n": ["", ""],
    "\r\r\n": ["", ""],
    "a\r\nb\rc\nd": ["a", "b", "c", "d"],
    "a\n\r\nb": ["a", "", "b"],
    "a\r\n\nb\r": ["a", "", "b"],
    "x\fy\u2028z\x85w": ["x\fy\u2028z\x85w"],  # str.splitlines would cut here
}


def _cuts(text: str) -> list[list[str]]:
    """Every way to cut ``text`` into pieces (empty pieces too, at the ends)."""
    ways = []
    for count in range(len(text) + 1):
        for points in itertools.combinations(range(len(text) + 1), count):
            bounds = [0, *points, len(text)]
            ways.append([text[a:b] for a, b in itertools.pairwise(bounds)])
    return ways


@pytest.mark.parametrize(("text", "lines"), CASES.items(), ids=repr)
def test_every_cut_gives_the_same_lines(text: str, lines: list[str]) -> None:
    for pieces in _cuts(text):
        splitter = LineSplitter()
        got = [line for piece in pieces for line in splitter.feed(piece)] + splitter.end()
        assert got == lines, pieces


def test_a_line_ending_in_cr_is_given_at_once() -> None:
    splitter = LineSplitter()
    assert splitter.feed("event: a\r") == ["event: a"]  # no wait for a \n
    assert splitter.feed("\n") == []  # the \r\n's second half, not a line
    assert splitter.feed("\n") == [""]  # a line of its own


def test_a_long_line_in_many_pieces() -> None:
    splitter = LineSplitter()
    for _ in range(10_000):
        assert splitter.feed("x") == []
    assert splitter.feed("\n") == ["x" * 10_000]


def test_text_split_inside_a_character_is_decoded_whole() -> None:
    data = "€uro ✓\n".encode()
    for cut in range(1, len(data)):
        text = "".join(decode_text(iter([data[:cut], data[cut:]]), "utf-8"))
        assert text == "€uro ✓\n"
    # A truncated character at the end is replaced, not lost or raised.
    assert "".join(decode_text(iter([b"ok\xe2\x82"]), "utf-8")) == "ok\ufffd"


def test_closing_early_closes_what_is_beneath() -> None:
    closed: list[bool] = []

    def pieces() -> Iterator[bytes]:
        try:
            yield b"a\nb\n"
            yield b"c\n"
        finally:
            closed.append(True)

    lines = split_lines(decode_text(pieces(), "utf-8"))
    assert next(lines) == "a"
    lines.close()
    assert closed == [True]
