"""TCP connect decisions without I/O: address order, the race's schedule, errors.

``Race`` reads no clock: every test passes the times itself, a fake clock
that only moves when the test says so.
"""

from __future__ import annotations

import errno
import socket

import pytest

import rawkeep
from rawkeep._io_errors import attempts_failed
from rawkeep._tcp import ATTEMPT_DELAY, AddrInfo, Race, interleave, literal_hosts

V6, V4 = socket.AF_INET6, socket.AF_INET


def info(family: int, address: str) -> AddrInfo:
    sockaddr: tuple[object, ...] = (address, 80, 0, 0) if family == V6 else (address, 80)
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr)


def addresses(infos: list[AddrInfo]) -> list[str]:
    return [str(item[4][0]) for item in infos]


# -- order (RFC 8305 section 4) -------------------------------------------------


def test_families_alternate_starting_with_the_first_address_family() -> None:
    resolved = [
        info(V6, "2001:db8::1"),
        info(V6, "2001:db8::2"),
        info(V6, "2001:db8::3"),
        info(V4, "192.0.2.1"),
        info(V4, "192.0.2.2"),
    ]
    assert addresses(interleave(resolved)) == [
        "2001:db8::1",
        "192.0.2.1",
        "2001:db8::2",
        "192.0.2.2",
        "2001:db8::3",
    ]


def test_an_ipv4_first_answer_keeps_ipv4_first() -> None:
    resolved = [info(V4, "192.0.2.1"), info(V6, "2001:db8::1"), info(V6, "2001:db8::2")]
    assert addresses(interleave(resolved)) == ["192.0.2.1", "2001:db8::1", "2001:db8::2"]


def test_one_family_keeps_the_resolver_order_and_duplicates_go() -> None:
    resolved = [info(V4, "192.0.2.2"), info(V4, "192.0.2.1"), info(V4, "192.0.2.2")]
    assert addresses(interleave(resolved)) == ["192.0.2.2", "192.0.2.1"]
    assert interleave([]) == []


def test_a_literal_is_not_looked_up_and_a_host_table_comes_first() -> None:
    assert literal_hosts("127.0.0.1", None) == ("127.0.0.1",)
    assert literal_hosts("::1", None) == ("::1",)
    assert literal_hosts("example.test", None) is None  # a name: resolve it
    assert literal_hosts("example.test", ("::1", "127.0.0.1")) == ("::1", "127.0.0.1")


# -- the schedule (RFC 8305 section 5) -------------------------------------------


def test_the_next_attempt_starts_after_the_delay_while_the_first_goes_on() -> None:
    race = Race(3, deadline=10.0)
    assert race.start_next(0.0) == 0
    assert race.start_next(0.0) is None  # one at a time
    assert race.wait_time(0.0) == pytest.approx(ATTEMPT_DELAY)
    assert race.start_next(ATTEMPT_DELAY - 0.001) is None
    assert race.start_next(ATTEMPT_DELAY) == 1
    assert race.running == [0, 1]  # the first is not given up
    assert race.start_next(2 * ATTEMPT_DELAY) == 2
    assert race.start_next(2 * ATTEMPT_DELAY) is None  # no more addresses
    assert race.wait_time(3.0) == pytest.approx(7.0)  # only the deadline is left


def test_a_failed_attempt_starts_the_next_at_once() -> None:
    race = Race(4, deadline=None)
    assert race.start_next(0.0) == 0
    race.failed(0)
    assert race.start_next(0.001) == 1  # not at 0.25
    assert race.start_next(ATTEMPT_DELAY + 0.001) == 2  # 1 still going: its delay
    race.failed(2)  # while 1 goes on
    assert race.start_next(ATTEMPT_DELAY + 0.002) == 3  # not at 0.5
    assert race.running == [1, 3]


def test_the_first_to_connect_wins_and_the_others_are_to_close() -> None:
    race = Race(3, deadline=None)
    race.start_next(0.0)
    race.start_next(ATTEMPT_DELAY)
    race.start_next(2 * ATTEMPT_DELAY)
    assert race.won(1) == [0, 2]
    assert race.running == []
    assert race.start_next(5.0) is None
    assert not race.is_lost()


def test_lost_when_every_attempt_failed() -> None:
    race = Race(2, deadline=None)
    race.start_next(0.0)
    race.failed(0)
    assert not race.is_lost()  # one is left to try
    race.start_next(0.0)
    race.failed(1)
    assert race.is_lost()
    assert Race(0, deadline=None).is_lost()  # nothing to try


def test_the_deadline_bounds_the_whole_race() -> None:
    race = Race(3, deadline=0.4)
    race.start_next(0.0)
    assert race.wait_time(0.0) == pytest.approx(ATTEMPT_DELAY)
    race.start_next(ATTEMPT_DELAY)
    assert race.wait_time(ATTEMPT_DELAY) == pytest.approx(0.4 - ATTEMPT_DELAY)  # before 0.5
    assert race.is_timed_out(0.4)
    assert race.start_next(0.5) is None  # nothing starts after it
    assert race.running == [0, 1]  # what the shell reports as timed out


def test_no_deadline_and_nothing_left_to_start_waits_without_limit() -> None:
    race = Race(1, deadline=None)
    race.start_next(0.0)
    assert race.wait_time(100.0) is None
    assert not race.is_timed_out(1e9)


def simulate(connect_times: list[float | None], deadline: float) -> tuple[int | None, float]:
    """Drive a race as a shell does, on a fake clock: attempt ``i`` connects
    ``connect_times[i]`` seconds after it starts (None: never). The winner
    and the time it connected, or (None, time the race ended)."""
    race = Race(len(connect_times), deadline)
    now = 0.0
    done_at: dict[int, float] = {}
    for _ in range(100):
        while (index := race.start_next(now)) is not None:
            took = connect_times[index]
            if took is not None:
                done_at[index] = now + took
        if race.is_timed_out(now):
            return None, now
        wait = race.wait_time(now)
        pending = [at for index, at in done_at.items() if index in race.running]
        next_event = min([*pending, now + (wait if wait is not None else 1e9)])
        now = next_event
        for index in race.running:
            if done_at.get(index) == now:
                race.won(index)
                return index, now
    raise AssertionError("the race did not end")


def test_a_black_holed_first_address_costs_one_delay() -> None:
    winner, at = simulate([None, 0.001], deadline=10.0)
    assert winner == 1
    assert at == pytest.approx(ATTEMPT_DELAY + 0.001)


def test_a_slow_but_alive_first_address_still_wins_if_first_to_connect() -> None:
    winner, at = simulate([0.3, 0.2], deadline=10.0)
    assert winner == 0
    assert at == pytest.approx(0.3)


def test_every_address_black_holed_ends_at_the_deadline() -> None:
    winner, at = simulate([None, None, None], deadline=2.0)
    assert winner is None
    assert at == pytest.approx(2.0)


# -- the error when all failed -------------------------------------------------


def refused() -> OSError:
    return OSError(errno.ECONNREFUSED, "Connection refused")


def test_one_literal_address_reads_as_before() -> None:
    error = attempts_failed("127.0.0.1", 1, [("127.0.0.1", refused())], 5.0, timed_out=False)
    assert type(error) is rawkeep.ConnectError
    assert error.message == "could not connect to 127.0.0.1:1: Connection refused"


def test_every_address_tried_is_named() -> None:
    failures = [("::1", refused()), ("127.0.0.1", refused())]
    error = attempts_failed("dual.test", 80, failures, 5.0, timed_out=False)
    assert (
        error.message == "could not connect to dual.test:80 (::1, 127.0.0.1): Connection refused"
    )
    unreachable = OSError(errno.ENETUNREACH, "Network is unreachable")
    failures = [("::1", unreachable), ("127.0.0.1", refused())]
    error = attempts_failed("dual.test", 80, failures, 5.0, timed_out=False)
    assert error.message == (
        "could not connect to dual.test:80 (::1, 127.0.0.1):"
        " ::1: Network is unreachable; 127.0.0.1: Connection refused"
    )


def test_the_deadline_passing_is_a_connect_timeout_naming_the_addresses() -> None:
    failures = [("::1", TimeoutError()), ("127.0.0.1", refused())]
    error = attempts_failed("dual.test", 80, failures, 0.5, timed_out=True)
    assert type(error) is rawkeep.ConnectTimeout
    assert error.message == "connect to dual.test:80 (::1, 127.0.0.1) timed out after 0.5 s"


def test_a_deadline_passed_before_any_attempt_is_still_a_connect_timeout() -> None:
    error = attempts_failed("a.test", 80, [], 0, timed_out=True)  # connect=0
    assert type(error) is rawkeep.ConnectTimeout
    assert error.message == "connect to a.test:80 timed out after 0 s"
