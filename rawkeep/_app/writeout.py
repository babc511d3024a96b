"""``-w`` / ``--write-out``: a line of facts about each transfer, curl style.

The format is parsed once, before any I/O (``WriteOut.parse``): ``%{name}``
names a variable, ``%%`` is a ``%``, and ``\\n``, ``\\r``, ``\\t`` and
``\\\\`` are escapes. An unknown ``%{name}`` is a ``UsageError``. After
each transfer (a URL with its redirects and retries) ``render`` fills it
from a ``Facts``, which ``FactsLog`` gathers from the client's events and
the final response. A transfer that failed still writes its line, with a
status of ``000``, as curl does (``-w '%{http_code}'`` after a refused
connection prints ``000``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from .._events import ConnectionOpened, ConnectionReused, Event, RequestRetried

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["VARIABLES", "Facts", "FactsLog", "WriteOut"]


@dataclass(kw_only=True)
class Facts:
    """What one transfer showed; what is not known yet keeps its default."""

    method: str
    url: str  # as given; url_effective once a response came
    started: float = field(default_factory=time.time)  # wall clock, as events
    status: int = 0
    http_version: str = ""
    content_type: str = ""
    size_download: int = 0
    wrote: bool = False  # some of it went to the output (no --retry then)
    connected_at: float | None = None  # first connection opened or reused
    first_byte_at: float | None = None  # the final head arrived
    ended_at: float | None = None
    num_connects: int = 0
    num_redirects: int = 0
    num_retries: int = 0  # --retry attempts before this one
    race_retries: int = 0  # keep-alive race retries (RequestRetried)
    connection_id: int | None = None
    reused: bool = False
    idle_for: float = 0.0  # the final request's connection, before it

    def seconds(self, at: float | None) -> str:
        return "0.000000" if at is None else f"{at - self.started:.6f}"


def _version(facts: Facts) -> str:
    return facts.http_version.removeprefix("HTTP/") or "0"


#: Every ``%{name}``, with what it writes (docs/cli.md lists the same).
VARIABLES: Final[dict[str, Callable[[Facts], str]]] = {
    # curl's
    "http_code": lambda f: f"{f.status:03d}",
    "response_code": lambda f: f"{f.status:03d}",
    "http_version": _version,
    "method": lambda f: f.method,
    "url": lambda f: f.url,
    "url_effective": lambda f: f.url,
    "content_type": lambda f: f.content_type,
    "size_download": lambda f: str(f.size_download),
    "num_connects": lambda f: str(f.num_connects),
    "num_redirects": lambda f: str(f.num_redirects),
    "num_retries": lambda f: str(f.num_retries),
    "time_connect": lambda f: f.seconds(f.connected_at),
    "time_starttransfer": lambda f: f.seconds(f.first_byte_at),
    "time_total": lambda f: f.seconds(f.ended_at),
    # rawkeep's connection story
    "connection_id": lambda f: "" if f.connection_id is None else str(f.connection_id),
    "reused": lambda f: "1" if f.reused else "0",
    "idle_for": lambda f: f"{f.idle_for:.6f}",
    "race_retries": lambda f: str(f.race_retries),
}

_TOKEN: Final = re.compile(r"%\{([^}]*)\}|%%|\\[nrt\\]|[^%\\]+|[%\\]")
_ESCAPES: Final = {"\\n": "\n", "\\r": "\r", "\\t": "\t", "\\\\": "\\", "%%": "%"}


class WriteOut:
    """A parsed ``-w`` format: literal text and variable names in order."""

    def __init__(self, parts: list[tuple[bool, str]]) -> None:
        self._parts = parts  # (is a variable, name or text)

    @classmethod
    def parse(cls, text: str) -> WriteOut:
        """Raises ``ValueError`` naming an unknown ``%{variable}``."""
        parts: list[tuple[bool, str]] = []
        for match in _TOKEN.finditer(text):
            name, token = match.group(1), match.group(0)
            if name is not None:
                if name not in VARIABLES:
                    raise ValueError(f"unknown -w variable %{{{name}}}")
                parts.append((True, name))
            else:
                parts.append((False, _ESCAPES.get(token, token)))
        return cls(parts)

    def render(self, facts: Facts) -> str:
        return "".join(VARIABLES[text](facts) if is_var else text for is_var, text in self._parts)


class FactsLog:
    """An ``on_event`` listener noting each transfer's connection facts."""

    def __init__(self) -> None:
        self.facts: Facts | None = None

    def start(self, method: str, url: str) -> Facts:
        self.facts = Facts(method=method, url=url)
        return self.facts

    def __call__(self, event: Event) -> None:
        facts = self.facts
        if facts is None:
            return
        if isinstance(event, ConnectionOpened | ConnectionReused):
            if facts.connected_at is None:
                facts.connected_at = event.time
            facts.connection_id = event.connection_id
            facts.reused = isinstance(event, ConnectionReused)
            facts.idle_for = event.idle_for if isinstance(event, ConnectionReused) else 0.0
            facts.num_connects += isinstance(event, ConnectionOpened)
        elif isinstance(event, RequestRetried):
            facts.race_retries += 1
