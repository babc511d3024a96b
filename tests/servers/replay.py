"""A server that answers with canned bytes, chosen per request: for fuzzing.

One server is shared by many Hypothesis examples (starting a server per
example would dominate the run time). Each example registers the exact bytes
to send (valid, mutated, or garbage) in a `ReplayBook` under a fresh key and
sends its requests with that key in ``X-Replay-Key``; the server answers
each such request with those bytes, as they are, and then either closes the
connection or waits for the next request on it.

Requests themselves are still parsed and cross-checked with h11 by
`ScriptedServer`, so the fuzz suites also prove that rawkeep never *sends*
anything invalid, whatever it was given.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .scripted import ScriptedServer, render_response

if TYPE_CHECKING:
    from collections.abc import Callable

    from .scripted import ServerConnection

    ScriptedHandler = Callable[[ServerConnection], None]

#: Requests one connection may carry before the server gives up on it.
MAX_REQUESTS_PER_CONNECTION = 100
#: Seconds the server waits for a request on an open connection.
IDLE_WAIT = 5.0


@dataclass(frozen=True)
class Canned:
    """Bytes to answer with, and whether to close the connection afterwards."""

    data: bytes
    close: bool


class ReplayBook:
    """Canned answers by key; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, Canned] = {}
        self._keys = itertools.count()

    def add(self, data: bytes, *, close: bool) -> str:
        """Register an answer; returns the key to send in ``X-Replay-Key``."""
        key = f"k{next(self._keys)}"
        with self._lock:
            self._entries[key] = Canned(data, close)
        return key

    def get(self, key: str) -> Canned | None:
        with self._lock:
            return self._entries.get(key)


def replay_handler(book: ReplayBook) -> ScriptedHandler:
    """The connection script: answer each request with its canned bytes."""

    def handle(conn: ServerConnection) -> None:
        for _ in range(MAX_REQUESTS_PER_CONNECTION):
            if not conn.wait_readable(IDLE_WAIT):
                return
            request = conn.read_request()
            if request is None:
                return
            key = request.header("x-replay-key")
            canned = None if key is None else book.get(key.decode("ascii", "replace"))
            if canned is None:
                conn.respond(render_response(404, b"no such key", [("Connection", "close")]))
                return
            conn.respond(canned.data)
            if canned.close:
                return

    return handle


def replay_server(book: ReplayBook) -> ScriptedServer:
    """A (not yet started) server answering from `book`."""
    return ScriptedServer(replay_handler(book))
