"""TCP keepalive on pooled connections, on both clients (``tcp_keepalive=``).

The option is checked before any I/O; the kernel options are read back
from the pooled socket itself (found through /proc/self/fd by its peer,
so both shells are asked the same way, without reaching into the pool);
and, in a network namespace of its own, a pooled connection whose packets
an nftables rule drops silently is found dead by the kernel and discarded
by the pool with keepalive, and waited on until the read timeout without.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import stat
import sys
from typing import TYPE_CHECKING, Any

import pytest
from netns import finish, namespace, unavailable

from rawkeep._tcp import check_keepalive, keepalive, socket_options

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.scripted import ScriptedServer

    import rawkeep

pytestmark = pytest.mark.both_clients

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="reads Linux's TCP options")


# -- the values, decided once ------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (60.0, (60, 10, 3)),  # the default: gone after 90 s of silence
        (1, (1, 1, 3)),
        (0.2, (1, 1, 3)),  # the kernel counts whole seconds, at least 1
        (7.5, (8, 2, 3)),  # rounded up, never earlier than asked
        (350.0, (350, 59, 3)),
        (1e9, (32767, 5462, 3)),  # Linux's largest
    ],
)
def test_interval_and_count_follow_from_the_idle_time(
    seconds: float, expected: tuple[int, int, int]
) -> None:
    assert keepalive(seconds) == expected


@pytest.mark.parametrize("value", [True, False, "60", b"60", [60], 1j])
def test_a_non_number_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="tcp_keepalive must be a number of seconds or None"):
        check_keepalive(value)


@pytest.mark.parametrize("value", [0, 0.0, -1, -0.5, math.inf, -math.inf, math.nan, 10**400])
def test_zero_negative_or_not_finite_is_a_value_error(value: object) -> None:
    with pytest.raises(ValueError, match="tcp_keepalive must be finite and > 0"):
        check_keepalive(value)


def test_none_turns_keepalive_off_but_not_nodelay() -> None:
    assert check_keepalive(None) is None
    assert socket_options(None) == ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
    options = socket_options(60.0)
    assert (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1) in options
    if hasattr(socket, "TCP_KEEPIDLE"):
        assert (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 60) in options


@pytest.mark.parametrize(
    ("value", "error"), [(True, TypeError), ("1", TypeError), (0, ValueError), (-1.0, ValueError)]
)
def test_both_clients_refuse_a_bad_value_when_made(
    make_client: Callable[..., rawkeep.Client], value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match="tcp_keepalive"):
        make_client(tcp_keepalive=value)


# -- the options on the pooled socket --------------------------------------------


def tcp_options(port: int) -> dict[str, int]:
    """The options of this process's one TCP socket connected to
    127.0.0.1:``port`` (the client's end), read from a duplicate of it."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile (the listing's own fd)
            if not stat.S_ISSOCK(os.fstat(int(name)).st_mode):
                continue
            with socket.socket(fileno=os.dup(int(name))) as sock:
                if sock.type != socket.SOCK_STREAM or sock.family != socket.AF_INET:
                    continue
                if sock.getpeername() != ("127.0.0.1", port):
                    continue
                found.append(
                    {
                        "nodelay": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
                        "keepalive": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                        "idle": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                        "interval": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                        "count": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                    }
                )
    assert len(found) == 1, found
    return found[0]


@linux_only
@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, {"keepalive": 1, "idle": 60, "interval": 10, "count": 3}),
        ({"tcp_keepalive": 1}, {"keepalive": 1, "idle": 1, "interval": 1, "count": 3}),
        ({"tcp_keepalive": 90.0}, {"keepalive": 1, "idle": 90, "interval": 15, "count": 3}),
        ({"tcp_keepalive": None}, {"keepalive": 0}),
    ],
)
def test_the_pooled_socket_carries_the_options(
    make_client: Callable[..., rawkeep.Client],
    server: ScriptedServer,
    kwargs: dict[str, Any],
    expected: dict[str, int],
) -> None:
    client = make_client(**kwargs)
    assert client.get(server.url).status == 200
    assert client.pool_stats().idle == 1
    options = tcp_options(server.port)
    assert options["nodelay"] != 0
    assert {name: options[name] for name in expected} == expected


# -- a connection dropped silently -------------------------------------------------

why_not = unavailable("nft")


@pytest.mark.slow
@pytest.mark.skipif(bool(why_not), reason=why_not or "")
def test_a_silently_dropped_idle_connection_is_found_and_replaced() -> None:
    """In a namespace: one pooled connection each for both clients, with
    ``tcp_keepalive=1`` and with None; then every packet of it is dropped
    (nftables), and after up to 6 s one more request is sent. The four
    children run side by side."""
    with namespace("keepalive") as space:
        runs = {
            (kind, value): space.start("keepalive", kind, value)
            for kind in ("sync", "async")
            for value in ("1", "none")
        }
        results = {key: finish(child, timeout=60.0) for key, child in runs.items()}
    for kind in ("sync", "async"):
        found = results[kind, "1"]
        # Probes at 1, 2 and 3 s of silence, given up at 4 s.
        assert found["detected_after"] is not None, found
        assert 3.0 <= found["detected_after"] < 5.5, found
        assert found.get("status") == 200, found
        assert found["reused"] is False, found
        assert found["elapsed"] < 1.0, found  # no wait: a fresh connection at once
        assert found["events"][:2] == ["StaleConnectionDiscarded", "ConnectionOpened"], found
        lost = results[kind, "none"]
        assert lost["detected_after"] is None, lost  # the kernel never knew
        assert lost.get("error") == "ReadTimeout", lost
        assert lost["elapsed"] >= 2.9, lost  # the whole read timeout
        assert lost["events"][0] == "ConnectionReused", lost
