"""What a keep-alive policy predicts for a request schedule, and the runner.

Each interop server is configured with a known keep-alive policy (an idle
timeout, a request limit, ``Connection: close`` on every response, HTTP/1.0,
an advertised ``Keep-Alive: timeout``). ``predict`` walks the schedule the
client will follow, request by request and pause by pause, and says what
the policy implies: how many TCP connections, how many requests each one
carries, and how each connection ends from the client's point of view
(found closed while idle, retired by the client, closed after a response).

The tests then hold *two* independent witnesses to that prediction: the
server's own log or counters, and rawkeep's events and ``PoolStats``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rawkeep._keepalive import server_timeout_margin

if TYPE_CHECKING:
    import rawkeep


@dataclass(frozen=True, kw_only=True)
class Policy:
    """A server's keep-alive behaviour, as configured for the test."""

    #: The server closes a connection idle this many seconds (None: never).
    idle_timeout: float | None = None
    #: The n-th response on a connection carries ``Connection: close``.
    max_requests: int | None = None
    #: Every response carries ``Connection: close`` (gunicorn's sync worker).
    close_every_response: bool = False
    #: Responses are HTTP/1.0 and the server closes after each.
    http10: bool = False
    #: The server sends ``Keep-Alive: timeout=N``.
    advertised_timeout: float | None = None
    #: Its idle timer fires after the same idle time every time (within
    #: ``rawkeep._learned.matches``), so two closes teach the client the
    #: limit: False for a server that checks idle connections now and then.
    precise_idle_timer: bool = True


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """Sequential requests with idle pauses after some of them."""

    requests: int = 200
    #: Pause after the request with these indices (0-based).
    pause_after: tuple[int, ...] = (49, 99, 149)
    #: Seconds of each pause.
    pause: float = 1.5


@dataclass
class Prediction:
    """What the policy implies for one schedule."""

    #: Requests carried by each TCP connection, in order.
    requests_per_connection: list[int] = field(default_factory=list)
    #: Idle connections the server closed and the client's probe caught.
    stale: int = 0
    #: Idle connections the client retired itself (server Keep-Alive timeout).
    expired: int = 0
    #: Connections closed because of a response (Connection: close, HTTP/1.0).
    closed_by_response: int = 0
    #: The last connection is still idle when the client closes.
    open_at_end: bool = False
    #: Indices of the connections the client closed while the server still
    #: kept them (retired before the server's idle timeout, or by
    #: ``Client.close``).
    closed_by_client: list[int] = field(default_factory=list)

    @property
    def connections(self) -> int:
        return len(self.requests_per_connection)


def predict(policy: Policy, schedule: Schedule) -> Prediction:
    """Walk `schedule` under `policy`; see the module docstring."""
    client_limit = None
    if policy.advertised_timeout is not None:
        timeout = policy.advertised_timeout
        client_limit = timeout - server_timeout_margin(timeout)
    result = Prediction()
    is_open = False
    learned = None  # the client's limit learned from the server's closes
    for index in range(schedule.requests):
        if not is_open:
            result.requests_per_connection.append(0)
            is_open = True
        result.requests_per_connection[-1] += 1
        served = result.requests_per_connection[-1]
        if (
            policy.http10
            or policy.close_every_response
            or (policy.max_requests is not None and served >= policy.max_requests)
        ):
            result.closed_by_response += 1
            is_open = False
        if is_open and index in schedule.pause_after:
            limits = [limit for limit in (client_limit, learned) if limit is not None]
            if limits and schedule.pause >= min(limits):
                result.expired += 1
                if policy.idle_timeout is None or schedule.pause < policy.idle_timeout:
                    result.closed_by_client.append(result.connections - 1)
                # else the server closed it first: the client retires a
                # connection it knows is dead, without probing it
                is_open = False
            elif policy.idle_timeout is not None and schedule.pause > policy.idle_timeout:
                result.stale += 1
                is_open = False
                if result.stale == 2 and policy.precise_idle_timer:
                    # Two closes after the same idle time: the limit is known.
                    learned = policy.idle_timeout - server_timeout_margin(policy.idle_timeout)
    result.open_at_end = is_open
    if is_open:
        result.closed_by_client.append(result.connections - 1)
    return result


@dataclass
class Run:
    """What the client saw: one entry per request, in order."""

    targets: list[str] = field(default_factory=list)
    connection_ids: list[int] = field(default_factory=list)
    reused: list[bool] = field(default_factory=list)
    bodies_ok: int = 0


def run_schedule(client: rawkeep.Client, base_url: str, schedule: Schedule, tag: str) -> Run:
    """Send the schedule's GETs one after the other; each body must echo its target."""
    run = Run()
    for index in range(schedule.requests):
        target = f"/{tag}/{index}"
        response = client.get(base_url + target)
        assert response.status == 200, (index, response.status, response.content[:200])
        assert response.content == target.encode(), (index, response.content[:200])
        run.bodies_ok += 1
        run.targets.append(target)
        run.connection_ids.append(response.connection_id)
        run.reused.append(response.reused)
        if index in schedule.pause_after:
            time.sleep(schedule.pause)
    return run


def runs(keys: list[object]) -> list[int]:
    """Lengths of the runs of equal consecutive keys: ``[a, a, b] -> [2, 1]``.

    For a sequential client, the requests of one TCP connection are
    consecutive, so the runs of a per-connection key (nginx's
    ``$connection``, the client's port, rawkeep's connection id) are the
    requests per connection.
    """
    lengths: list[int] = []
    previous: object = object()
    for key in keys:
        if lengths and key == previous:
            lengths[-1] += 1
        else:
            lengths.append(1)
        previous = key
    return lengths
