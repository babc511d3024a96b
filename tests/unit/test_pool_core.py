"""The pool core, driven with plain values and a fake clock: no socket, no thread.

Each test plays the part of a shell: it asks ``checkout``, "opens" a
connection for a reserved slot, finishes exchanges by setting the verdict a
real connection would reach, and checks the core's answers and counters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pytest

import rawkeep
from rawkeep._keepalive import ConnectionState, ExpiryRules, Lifetime
from rawkeep._pool_core import SWEEP_INTERVAL, PoolCore
from rawkeep._url import URL, Route

if TYPE_CHECKING:
    from rawkeep._events import CloseReason


def route(host: str = "a.test", port: int = 80) -> Route:
    return Route(URL(f"http://{host}:{port}/").origin)


@dataclass(eq=False)
class FakeConnection:
    """A connection as the core sees it: identity, keep-alive facts and
    the verdict of its last exchange, as plain values."""

    id: int
    route: Route
    life: Lifetime
    reused: bool = False
    response_started: bool = False
    close_reason: CloseReason | None = None
    finished: bool = True
    after_head: bool = False
    log: list[str] = field(default_factory=list)

    @property
    def is_reusable(self) -> bool:
        return self.finished and self.close_reason is None

    def carries_unretryable(self) -> bool:
        return not self.after_head


class Shell:
    """The smallest shell: a fake clock, and connections made on demand."""

    def __init__(self, **limits: int | None) -> None:
        self.now = 1000.0
        self.rules = ExpiryRules(idle_timeout=30.0, max_requests=None, max_age=None)
        self.core: PoolCore[FakeConnection] = PoolCore(
            max_connections=limits.get("max_connections", 100),
            max_connections_per_host=limits.get("max_connections_per_host", 10),
            rules=self.rules,
            now=self.now,
        )
        self.ids = 0

    def get(
        self, where: Route, *, fresh: bool = False, retryable: bool = True
    ) -> FakeConnection | None:
        """A connection as the pool would hand it out; None: must wait."""
        if not fresh:
            taken = self.core.take_freshest(where, self.now, retryable)
            if taken is not None:
                taken.reused = True  # what start_reuse does
                return taken
        for _ in range(10):
            conn, doomed, reserved = self.core.checkout(
                where, self.now, fresh=fresh, retryable=retryable
            )
            if conn is not None:
                conn.reused = True
                return conn
            if reserved:
                new = FakeConnection(self.ids, where, Lifetime(self.now))
                self.ids += 1
                self.core.opened(where)
                return new
            if not doomed:
                return None
        raise AssertionError("checkout never settled")

    def finish(self, conn: FakeConnection, **verdict: object) -> object:
        """End an exchange with a verdict, and give the connection back."""
        conn.life.responses += 1
        for name, value in verdict.items():
            setattr(conn, name, value)
        return self.core.checkin(conn, self.now)


def test_lifo_reuse_and_counters() -> None:
    shell = Shell()
    a, b = shell.get(route()), shell.get(route())
    assert a is not None
    assert b is not None
    assert (a.id, b.id) == (0, 1)
    shell.finish(a)
    shell.now += 1
    shell.finish(b)
    assert shell.get(route()) is b  # the most recently released
    stats = shell.core.stats()
    assert (stats.opened, stats.active, stats.idle, stats.closed) == (2, 1, 1, 0)
    assert stats.per_host["http://a.test:80"].idle == 1


def test_per_host_limit_makes_the_caller_wait_and_a_release_frees_it() -> None:
    shell = Shell(max_connections_per_host=1)
    first = shell.get(route())
    assert first is not None
    assert shell.get(route()) is None  # at the limit: wait
    assert shell.get(route("b.test")) is not None  # another route has room
    shell.finish(first)
    assert shell.get(route()) is first


def test_overall_limit_evicts_the_longest_idle_of_another_route() -> None:
    shell = Shell(max_connections=2)
    old, new = shell.get(route("old.test")), shell.get(route("new.test"))
    assert old is not None
    assert new is not None
    shell.finish(old)
    shell.now += 1
    shell.finish(new)
    conn, doomed, reserved = shell.core.checkout(route(), shell.now, fresh=False, retryable=True)
    assert conn is None
    assert not reserved
    assert [(d.conn, d.reason, d.expired) for d in doomed] == [(old, "pool_full", False)]
    assert old.life.state is ConnectionState.CLOSED
    assert shell.get(route()) is not None  # the slot freed is there


def test_idle_timeout_expires_on_checkout_with_the_reason() -> None:
    shell = Shell()
    conn = shell.get(route())
    assert conn is not None
    shell.finish(conn)
    shell.now += 29.9
    assert shell.get(route()) is conn
    shell.finish(conn)
    shell.now += SWEEP_INTERVAL / 2
    assert shell.core.take_freshest(route(), shell.now, True) is conn  # the short step
    shell.finish(conn)
    shell.now += 30.0
    assert shell.core.take_freshest(route(), shell.now, True) is None  # past expires_at
    taken, doomed, reserved = shell.core.checkout(route(), shell.now, fresh=False, retryable=True)
    assert taken is None
    assert reserved
    assert [(d.conn, d.reason, d.expired) for d in doomed] == [(conn, "idle_timeout", True)]


def test_server_keep_alive_limits_take_precedence_when_shorter() -> None:
    shell = Shell()
    conn = shell.get(route())
    assert conn is not None
    conn.life.note_keep_alive(5.0, 2)  # timeout=5: retired after 4 s idle
    shell.finish(conn)
    shell.now += 3.9
    assert conn.life.expiry_reason(shell.now, shell.rules) is None
    shell.now += 0.1
    assert conn.life.expiry_reason(shell.now, shell.rules) == "server_keep_alive"


def test_keep_alive_max_counts_further_requests() -> None:
    shell = Shell()
    conn = shell.get(route())
    assert conn is not None
    conn.life.note_keep_alive(None, 1)  # one more request allowed
    assert shell.finish(conn) is None
    again = shell.get(route())
    assert again is conn
    assert conn.life.server_requests_left is not None
    doomed = shell.finish(conn)
    assert doomed is not None
    assert (doomed.reason, doomed.expired) == ("server_keep_alive", True)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("verdict", "reason"),
    [
        ({"close_reason": "connection_close"}, "connection_close"),
        ({"close_reason": "http_1_0"}, "http_1_0"),
        ({"finished": False}, "error"),
    ],
)
def test_checkin_closes_what_the_exchange_forbids(verdict: dict[str, object], reason: str) -> None:
    shell = Shell()
    conn = shell.get(route())
    assert conn is not None
    doomed = shell.finish(conn, **verdict)
    assert doomed is not None
    assert (doomed.reason, doomed.expired) == (reason, False)  # type: ignore[attr-defined]
    stats = shell.core.stats()
    assert (stats.active, stats.idle, stats.closed) == (0, 0, 1)


def test_the_sweep_expires_other_routes_at_most_once_per_interval() -> None:
    shell = Shell()
    other = shell.get(route("other.test"))
    assert other is not None
    shell.finish(other)
    shell.now += 30.0  # other is due
    # A checkout of another route sweeps (the interval has passed since start).
    _, doomed, _ = shell.core.checkout(route(), shell.now, fresh=False, retryable=True)
    assert [(d.conn, d.reason) for d in doomed] == [(other, "idle_timeout")]
    late = shell.get(route("late.test"))
    assert late is not None
    shell.finish(late)
    shell.now += 30.0 + SWEEP_INTERVAL / 2
    _, doomed, _ = shell.core.checkout(route(), shell.now, fresh=False, retryable=True)
    assert [d.conn for d in doomed] == [late]


def test_the_sweep_skips_a_connection_reused_since_it_was_scheduled() -> None:
    shell = Shell()
    conn = shell.get(route())
    assert conn is not None
    shell.finish(conn)
    for _ in range(5):  # reused every 20 s: never 30 s idle
        shell.now += 20.0
        assert shell.get(route()) is conn
        shell.finish(conn)
    shell.now += 20.0
    _, doomed, _ = shell.core.checkout(route("x.test"), shell.now, fresh=False, retryable=True)
    assert doomed == []
    shell.now += 10.0
    _, doomed, _ = shell.core.checkout(route("x.test"), shell.now, fresh=False, retryable=True)
    assert [d.conn for d in doomed] == [conn]


def test_a_fresh_request_at_the_per_host_limit_evicts_its_own_idle() -> None:
    shell = Shell(max_connections_per_host=1)
    conn = shell.get(route())
    assert conn is not None
    shell.finish(conn)
    taken, doomed, reserved = shell.core.checkout(route(), shell.now, fresh=True, retryable=True)
    assert taken is None
    assert not reserved
    assert [(d.conn, d.reason) for d in doomed] == [(conn, "pool_full")]
    assert shell.get(route(), fresh=True) is not None


def test_an_unretryable_request_passes_over_a_connection_after_head() -> None:
    shell = Shell()
    head_conn = shell.get(route())
    assert head_conn is not None
    shell.finish(head_conn, after_head=True)
    post = shell.get(route(), retryable=False)
    assert post is not None
    assert post is not head_conn
    assert head_conn.life.state is ConnectionState.IDLE  # left for a GET
    assert shell.get(route()) is head_conn


def test_retire_is_counted_once() -> None:
    shell = Shell()
    conn = shell.get(route())
    assert conn is not None
    assert shell.core.retire(conn)
    assert not shell.core.retire(conn)
    stats = shell.core.stats()
    assert (stats.opened, stats.closed, stats.active) == (1, 1, 0)


def test_close_dooms_every_idle_connection_and_refuses_checkouts() -> None:
    shell = Shell()
    conns = [shell.get(route(f"h{i}.test")) for i in range(3)]
    for conn in conns:
        assert conn is not None
        shell.finish(conn)
    doomed = shell.core.close()
    assert sorted(d.conn.id for d in doomed) == [0, 1, 2]
    assert {d.reason for d in doomed} == {"client_closed"}
    with pytest.raises(rawkeep.ClientClosed):
        shell.core.checkout(route(), shell.now, fresh=False, retryable=True)


def test_open_failed_gives_the_slot_back() -> None:
    shell = Shell(max_connections_per_host=1)
    _, _, reserved = shell.core.checkout(route(), shell.now, fresh=False, retryable=True)
    assert reserved
    _, _, again = shell.core.checkout(route(), shell.now, fresh=False, retryable=True)
    assert not again
    shell.core.open_failed(route())
    _, _, reserved = shell.core.checkout(route(), shell.now, fresh=False, retryable=True)
    assert reserved


def test_the_schedule_stays_bounded_under_churn() -> None:
    """Connections closed while scheduled leave no growing heap behind: each
    round closes the scheduled idle connection and schedules a new one."""
    shell = Shell(max_connections_per_host=1)
    for _ in range(2000):
        conn = shell.get(route(), fresh=True)  # evicts the idle one, opens
        assert conn is not None
        shell.finish(conn)
        shell.now += 0.001
    stats = shell.core.stats()
    assert (stats.opened, stats.closed, stats.idle) == (2000, 1999, 1)
    assert len(shell.core._due) <= 2 * len(shell.core._scheduled) + 64


def test_waiters_are_served_in_arrival_order() -> None:
    """At the limit, the first caller to wait gets the first release; a
    newcomer queues behind the waiters even when a connection is idle."""
    shell = Shell(max_connections_per_host=1)
    busy = shell.get(route())
    assert busy is not None
    first, second = object(), object()
    for waiter in (first, second):
        taken, _, reserved = shell.core.checkout(
            route(), shell.now, fresh=False, retryable=True, waiter=waiter
        )
        assert taken is None
        assert not reserved
        shell.core.enqueue(route(), waiter)
    shell.finish(busy)  # idle now
    assert shell.core.take_freshest(route(), shell.now, True) is None  # no barging
    not_yet, _, _ = shell.core.checkout(
        route(), shell.now, fresh=False, retryable=True, waiter=second
    )
    assert not_yet is None
    served, _, _ = shell.core.checkout(
        route(), shell.now, fresh=False, retryable=True, waiter=first
    )
    assert served is busy
    assert shell.core.has_waiters(route())  # second is first in line now
    shell.finish(busy)
    again, _, _ = shell.core.checkout(
        route(), shell.now, fresh=False, retryable=True, waiter=second
    )
    assert again is busy
    assert not shell.core.has_waiters(route())


def test_a_waiter_that_gives_up_leaves_the_queue() -> None:
    shell = Shell(max_connections_per_host=1)
    busy = shell.get(route())
    assert busy is not None
    quitter, patient = object(), object()
    shell.core.enqueue(route(), quitter)
    shell.core.enqueue(route(), patient)
    shell.core.dequeue(route(), quitter)  # timed out
    shell.finish(busy)
    served, _, _ = shell.core.checkout(
        route(), shell.now, fresh=False, retryable=True, waiter=patient
    )
    assert served is busy
