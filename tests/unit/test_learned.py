"""Learning a server's idle limit from its closes: plain values, a fake clock.

The rules are in ``rawkeep._learned``; here the pool core is fed what the
shells would feed it (a close seen after so long idle, a reuse that went
through) and its answers are checked: what it retires, what a request that
can't be sent again may take, what it forgets.
"""

from __future__ import annotations

import pytest

from rawkeep._keepalive import ExpiryRules, unretryable_margin
from rawkeep._learned import (
    MAX_LEARNED,
    TRUSTED_FOR,
    IdleLimit,
    adopt,
    matches,
)
from unit.test_pool_core import FakeConnection, Shell, route


def test_one_close_is_a_candidate_and_a_second_after_the_same_idle_time_the_limit() -> None:
    assert adopt(None, 2.0, 0.0) == (None, 2.0)
    learned, candidate = adopt(2.0, 1.99, 5.0)
    assert candidate is None
    assert learned is not None
    assert learned.limit == 1.99
    # A restart closes connections after any idle time: nothing matches.
    assert adopt(2.0, 0.4, 5.0) == (None, 0.4)


def test_matches_allows_timer_noise_only() -> None:
    assert matches(1.0, 1.015)
    assert not matches(1.0, 1.05)
    assert matches(60.0, 61.0)  # 2 % of a long limit
    assert not matches(60.0, 62.0)


def test_margins_keep_unretryable_requests_further_from_the_limit() -> None:
    learned = IdleLimit(2.0, now=0.0)
    assert learned.retryable_limit == 1.5  # a quarter under 4 s, as announced
    assert learned.unretryable_limit == 1.0
    assert unretryable_margin(60.0) == 2.0
    assert learned.allows(1.4, retryable=True, now=1.0)
    assert not learned.allows(1.6, retryable=True, now=1.0)
    assert learned.allows(0.9, retryable=False, now=1.0)
    assert not learned.allows(1.1, retryable=False, now=1.0)


def test_after_trusted_for_retryable_requests_explore_but_unretryable_ones_do_not() -> None:
    learned = IdleLimit(2.0, now=0.0)
    later = TRUSTED_FOR + 1
    assert learned.allows(5.0, retryable=True, now=later)
    assert not learned.allows(1.1, retryable=False, now=later)


@pytest.mark.parametrize(
    ("idle", "evidence", "changed", "limit", "confirmed_at"),
    [
        (2.01, "fin", False, 2.0, 10.0),  # the same limit: confirmed
        (1.0, "probe", True, 1.0, 10.0),  # closes sooner now
        (1.0, "fin", True, 1.0, 10.0),
        (5.0, "fin", True, 5.0, 10.0),  # exactly later: keeps longer now
        (5.0, "race", True, 5.0, 10.0),
        (5.0, "probe", False, 2.0, 0.0),  # probed late: says nothing new
    ],
)
def test_a_close_after_learning(
    idle: float, evidence: str, changed: bool, limit: float, confirmed_at: float
) -> None:
    learned = IdleLimit(2.0, now=0.0)
    assert learned.closed(idle, evidence, now=10.0) is changed  # type: ignore[arg-type]
    assert learned.limit == limit
    assert learned.confirmed_at == confirmed_at


# -- the pool core ------------------------------------------------------------


def idle_one(shell: Shell) -> FakeConnection:
    """A connection that served one response and went idle now."""
    conn = shell.get(route())
    assert conn is not None
    shell.finish(conn)
    return conn


def take(shell: Shell, *, retryable: bool) -> FakeConnection | None:
    """The idle connection the core hands out now, if any (the general path:
    a reserved slot is given back)."""
    conn, _, reserved = shell.core.checkout(route(), shell.now, fresh=False, retryable=retryable)
    if reserved:
        shell.core.open_failed(route())
    return conn


def learn(shell: Shell, limit: float) -> None:
    """Two connections closed by the server after ``limit`` s idle."""
    for _ in range(2):
        conn = idle_one(shell)
        taken = shell.core.take_freshest(route(), shell.now, True)
        assert taken is conn
        shell.core.retire(conn, stale=True)
        shell.core.learn_close(conn, limit, "fin", shell.now)


def test_closes_right_after_a_response_teach_nothing() -> None:
    shell = Shell()
    learn(shell, 0.05)  # closed 50 ms after going idle, twice: no timer
    assert shell.core.lessons == []
    assert shell.core.stats().per_host["http://a.test:80"].learned_idle_limit is None


def test_core_learns_from_two_closes_and_says_so_once() -> None:
    shell = Shell()
    learn(shell, 2.0)
    [lesson] = shell.core.lessons
    assert (lesson.limit, lesson.evidence, lesson.idle) == (2.0, "fin", 2.0)
    assert shell.core.stats().per_host["http://a.test:80"].learned_idle_limit == 2.0


def test_learned_limit_retires_idle_connections_as_a_header_would() -> None:
    shell = Shell()
    learn(shell, 2.0)
    conn = idle_one(shell)
    shell.now += 1.49
    assert take(shell, retryable=True) is conn
    shell.finish(conn)
    shell.now += 1.5  # a quarter before the limit: retired
    taken, doomed, reserved = shell.core.checkout(route(), shell.now, fresh=False, retryable=True)
    assert taken is None
    assert reserved
    assert [(d.conn, d.reason, d.expired) for d in doomed] == [(conn, "server_keep_alive", True)]


def test_unretryable_request_passes_over_a_connection_a_get_may_take() -> None:
    shell = Shell()
    learn(shell, 2.0)
    conn = idle_one(shell)
    shell.now += 1.2  # past the POST margin (1.0 s), inside the GET one (1.5 s)
    assert shell.core.take_freshest(route(), shell.now, False) is None
    taken, doomed, reserved = shell.core.checkout(route(), shell.now, fresh=False, retryable=False)
    assert (taken, doomed, reserved) == (None, [], True)  # a fresh one; conn stays idle
    assert shell.core.take_freshest(route(), shell.now, True) is conn


def test_announced_timeout_also_keeps_unretryable_requests_further_away() -> None:
    shell = Shell()
    conn = shell.get(route())
    assert conn is not None
    conn.life.note_keep_alive(4.0, None)  # GET until 3 s idle, POST until 2 s
    shell.finish(conn)
    shell.now += 2.5
    assert take(shell, retryable=False) is None
    assert take(shell, retryable=True) is conn


def test_a_reuse_clearly_past_the_limit_forgets_it() -> None:
    shell = Shell()
    learn(shell, 2.0)
    shell.core.lessons.clear()
    conn = idle_one(shell)
    shell.rules = shell.core.rules = ExpiryRules(
        idle_timeout=None, max_requests=None, max_age=None
    )
    shell.now += TRUSTED_FOR + 5  # no longer trusted: a GET may explore
    assert take(shell, retryable=True) is conn
    conn.reused = True  # what start_reuse does
    shell.finish(conn)  # the exchange went through after 305 s idle
    [lesson] = shell.core.lessons
    assert (lesson.limit, lesson.evidence) == (None, "kept_longer")
    assert shell.core.stats().per_host["http://a.test:80"].learned_idle_limit is None


def test_memory_is_bounded_by_max_learned() -> None:
    shell = Shell(max_connections=None, max_connections_per_host=None)
    for i in range(MAX_LEARNED + 5):
        where = route(f"h{i}.test")
        for _ in range(2):
            conn = shell.get(where)
            assert conn is not None
            shell.core.retire(conn)
            shell.core.learn_close(conn, 2.0, "fin", shell.now)
    per_host = shell.core.stats().per_host
    remembered = [name for name, s in per_host.items() if s.learned_idle_limit is not None]
    assert len(remembered) == MAX_LEARNED
    assert "http://h0.test:80" not in remembered  # the oldest went first
    assert f"http://h{MAX_LEARNED + 4}.test:80" in remembered
