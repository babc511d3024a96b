"""One fuzz exchange: canned bytes served over a real socket, rawkeep as client.

`exchange` registers the bytes with the shared replay server, sends one or
more requests with a fresh client, and checks what must hold whatever the
bytes were:

* the client returned a response or raised a ``RawkeepError``; anything
  else propagates and fails the example;
* it did not wait much longer than its (short) read timeout;
* it leaked nothing: no connection left active, ``opened - closed == idle``
  before ``close()``, everything closed after it, and one ending event per
  opened connection.

Hypothesis settings for the fuzz suites live here too: modest example
counts and derandomized (a fixed sequence of examples) so CI is fast and
repeatable. ``RAWKEEP_FUZZ_EXAMPLES=2000 RAWKEEP_FUZZ_RANDOM=1`` runs a
longer, randomized search by hand.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hypothesis import HealthCheck, settings
from servers.recorder import EventRecorder

import rawkeep

if TYPE_CHECKING:
    from servers.replay import ReplayBook
    from servers.scripted import ScriptedServer

#: Per-phase timeouts of fuzz clients: short, so a truncated response costs
#: a quarter of a second, not the default 30 s.
READ_TIMEOUT = 0.25
TIMEOUT = rawkeep.Timeout(connect=2.0, read=READ_TIMEOUT, write=2.0, pool=2.0)
#: Seconds one request may take at most: every byte is sent at once, so the
#: client waits at most one read timeout for bytes that never come (plus
#: slack for a loaded machine).
REQUEST_BUDGET = 2 * READ_TIMEOUT + 1.0

ENDINGS = ("ConnectionExpired", "StaleConnectionDiscarded", "ConnectionClosed")


def fuzz_settings(default_examples: int) -> settings:
    """Settings for one fuzz test; the environment can raise the count."""
    return settings(
        max_examples=int(os.environ.get("RAWKEEP_FUZZ_EXAMPLES", default_examples)),
        derandomize=not os.environ.get("RAWKEEP_FUZZ_RANDOM"),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,
    )


@dataclass
class Outcome:
    """What one exchange produced."""

    responses: list[rawkeep.Response] = field(default_factory=list)
    #: Each response's body, decoded (read whole, or streamed in pieces).
    bodies: list[bytes] = field(default_factory=list)
    error: rawkeep.RawkeepError | None = None
    elapsed: float = 0.0
    events: EventRecorder = field(default_factory=EventRecorder)


def use_response(response: rawkeep.Response) -> None:
    """Touch what a caller would: text, headers, repr. None of it may raise."""
    assert isinstance(response.text, str)
    assert isinstance(list(response.headers.items()), list)
    assert isinstance(repr(response), str)


def exchange(
    server: ScriptedServer,
    book: ReplayBook,
    wire: bytes,
    *,
    close: bool,
    method: str = "GET",
    requests: int = 2,
    streamed: bool = False,
) -> Outcome:
    """Answer `requests` requests with `wire` (see the module docstring)."""
    key = book.add(wire, close=close)
    outcome = Outcome()
    client = rawkeep.Client(timeout=TIMEOUT, on_event=outcome.events)
    started = time.monotonic()
    try:
        for _ in range(requests):
            response, body = _send(client, server.url, key, method, streamed)
            outcome.responses.append(response)
            outcome.bodies.append(body)
    except rawkeep.RawkeepError as exc:
        outcome.error = exc
    finally:
        in_use = client.pool_stats()
        client.close()
    outcome.elapsed = time.monotonic() - started
    assert outcome.elapsed < requests * REQUEST_BUDGET, outcome.elapsed
    assert in_use.active == 0
    assert in_use.opened - in_use.closed == in_use.idle
    closed = client.pool_stats()
    assert (closed.active, closed.idle) == (0, 0)
    assert closed.opened == closed.closed
    summary = outcome.events.names()
    assert summary.count("ConnectionOpened") == closed.opened
    assert sum(summary.count(name) for name in ENDINGS) == closed.opened
    return outcome


def _send(
    client: rawkeep.Client, url: str, key: str, method: str, streamed: bool
) -> tuple[rawkeep.Response, bytes]:
    headers = {"X-Replay-Key": key}
    if not streamed:
        response = client.request(method, url, headers=headers)
        use_response(response)
        return response, response.content
    with client.stream(method, url, headers=headers) as response:
        body = b"".join(response.iter_bytes(chunk_size=7))
        assert isinstance(repr(response), str)
    return response, body
