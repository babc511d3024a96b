"""Servers shared by the examples of a fuzz module (one per module, not per example)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from servers.replay import ReplayBook, replay_server

if TYPE_CHECKING:
    from collections.abc import Iterator

    from servers.scripted import ScriptedServer


@pytest.fixture(scope="module")
def book() -> ReplayBook:
    """Canned answers of the module's replay server."""
    return ReplayBook()


@pytest.fixture(scope="module")
def fuzz_server(book: ReplayBook) -> Iterator[ScriptedServer]:
    """Answers each request with the bytes registered under its key in `book`."""
    with replay_server(book) as server:
        yield server
