"""An `on_event` callback that records rawkeep's lifecycle events as data."""

from __future__ import annotations

import threading
from typing import Any

import rawkeep


class EventRecorder:
    """An `on_event` callback that keeps every event, thread-safely."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events: list[rawkeep.Event] = []
        #: ``RequestSent`` and ``ResponseReceived``, apart: the tests of
        #: connections' lives compare ``events`` whole.
        self.exchange: list[rawkeep.RequestSent | rawkeep.ResponseReceived] = []

    def __call__(self, event: rawkeep.Event) -> None:
        with self._lock:
            if isinstance(event, rawkeep.RequestSent | rawkeep.ResponseReceived):
                self.exchange.append(event)
            else:
                self.events.append(event)

    def snapshot(self) -> list[rawkeep.Event]:
        with self._lock:
            return list(self.events)

    def lifecycle(self) -> list[rawkeep.Event]:
        """The events of connections' lives: every event but
        ``IdleLimitLearned``, which tells of the server (``of_type`` has it)."""
        return [e for e in self.snapshot() if not isinstance(e, rawkeep.IdleLimitLearned)]

    def summary(self) -> list[tuple[str, str | None]]:
        """``[(event class name, reason or None)]`` of ``lifecycle()``, in order."""
        return [(type(e).__name__, getattr(e, "reason", None)) for e in self.lifecycle()]

    def names(self) -> list[str]:
        return [type(e).__name__ for e in self.lifecycle()]

    def of_type(self, name: str) -> list[Any]:
        return [e for e in self.snapshot() if type(e).__name__ == name]

    def count(self, name: str) -> int:
        return len(self.of_type(name))

    def by_connection(self) -> dict[int, list[tuple[str, str | None]]]:
        """Each connection's own story, ``connection_id -> summary``.

        Independent of how the stories of several connections interleave.
        """
        stories: dict[int, list[tuple[str, str | None]]] = {}
        for event in self.lifecycle():
            if type(event).__name__ == "RequestRetried":
                continue
            stories.setdefault(event.connection_id, []).append(
                (type(event).__name__, getattr(event, "reason", None))
            )
        return stories

    def clear(self) -> None:
        with self._lock:
            self.events.clear()
            self.exchange.clear()
