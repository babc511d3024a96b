"""Happy Eyeballs over real sockets, on both clients (RFC 8305).

A black hole is a loopback listener whose accept queue is full: Linux then
drops further SYNs without a word, so a connect to it hangs until its
timeout, as a broken route would. With a black hole on ::1 port P and a
real server on 127.0.0.1 port P, a name that resolves to ::1 first must
still be fetched in about ``ATTEMPT_DELAY`` (the second attempt starts then
and wins), not in the connect timeout, and the losing socket must be
closed. The name's addresses come from the client's host table
(``resolve=``, curl's ``--resolve``), since
this machine's /etc/hosts is not ours to change; one test goes through the
system resolver instead, in a network namespace of its own whose
/etc/hosts gives ``dual.test`` both addresses.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest
from netns import namespace, unavailable
from servers.addresses import refusing

import rawkeep
from rawkeep._tcp import ATTEMPT_DELAY

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from servers.scripted import ScriptedServer

pytestmark = [
    pytest.mark.both_clients,
    pytest.mark.skipif(sys.platform != "linux", reason="black holes and fd counts are Linux's"),
]

#: The connect timeout of these tests: what a black hole would cost without the race.
CONNECT_TIMEOUT = 5.0
#: The most a race lost by its first address may take here (one delay,
#: plus room for a loaded machine); far below ``CONNECT_TIMEOUT``.
RACE_LIMIT = ATTEMPT_DELAY + 0.75


@contextlib.contextmanager
def black_hole(host: str, port: int) -> Iterator[int]:
    """A listener on ``host:port`` (0: any) whose accept queue is full:
    connects to it hang. Yields the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets = [socket.socket(family, socket.SOCK_STREAM)]
    try:
        try:
            sockets[0].bind((host, port))
        except OSError as exc:
            pytest.skip(f"{host} port {port} is taken here: {exc}")
        sockets[0].listen(0)
        port = sockets[0].getsockname()[1]
        for _ in range(16):
            filler = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(filler)
            filler.setblocking(False)
            filler.connect_ex((host, port))
            if not select.select([], [filler], [], 0.3)[1]:
                break  # this one hangs: the queue is full
        else:
            pytest.skip("connects to a full-backlog listener do not hang here")
        yield port
    finally:
        for sock in sockets:
            sock.close()


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def eventually(predicate: Callable[[], bool], limit: float = 3.0) -> bool:
    """Whether ``predicate()`` holds within ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


DUAL = {"dual.test": ("::1", "127.0.0.1")}


def test_a_black_holed_first_address_costs_one_attempt_delay(
    make_client: Callable[..., rawkeep.Client], server: ScriptedServer
) -> None:
    with black_hole("::1", server.port):
        client = make_client(timeout=CONNECT_TIMEOUT, resolve=DUAL)
        before = fd_count()
        started = time.monotonic()
        response = client.get(f"http://dual.test:{server.port}/")
        elapsed = time.monotonic() - started
        assert response.status == 200
        assert ATTEMPT_DELAY * 0.9 <= elapsed < RACE_LIMIT, elapsed
        # Two more: the winner, pooled, and the server's end of it. The
        # loser's socket is closed (the black hole never accepted it).
        assert fd_count() == before + 2
        client.close()
        assert eventually(lambda: fd_count() == before)  # the server saw the close


def test_a_refused_first_address_starts_the_next_at_once(
    make_client: Callable[..., rawkeep.Client], server: ScriptedServer
) -> None:
    with refusing("::1", server.port):
        client = make_client(timeout=CONNECT_TIMEOUT, resolve=DUAL)
        started = time.monotonic()
        assert client.get(f"http://dual.test:{server.port}/").status == 200
        assert time.monotonic() - started < ATTEMPT_DELAY * 0.8  # no head start to wait out


def test_a_failure_while_another_attempt_hangs_starts_the_next_at_once(
    make_client: Callable[..., rawkeep.Client], server: ScriptedServer
) -> None:
    """::1 hangs; 127.0.0.2, tried after one delay, refuses: 127.0.0.1 is
    tried at once then, not one more delay later."""
    with black_hole("::1", server.port), refusing("127.0.0.2", server.port):
        hosts = {"three.test": ("::1", "127.0.0.2", "127.0.0.1")}
        client = make_client(timeout=CONNECT_TIMEOUT, resolve=hosts)
        started = time.monotonic()
        assert client.get(f"http://three.test:{server.port}/").status == 200
        elapsed = time.monotonic() - started
    assert ATTEMPT_DELAY * 0.9 <= elapsed < ATTEMPT_DELAY * 1.8, elapsed


def test_a_first_address_that_answers_wins_alone(
    make_client: Callable[..., rawkeep.Client], server: ScriptedServer
) -> None:
    client = make_client(resolve={"dual.test": ("127.0.0.1", "::1")})
    started = time.monotonic()
    assert client.get(f"http://dual.test:{server.port}/").status == 200
    assert time.monotonic() - started < ATTEMPT_DELAY * 0.8
    assert client.pool_stats().opened == 1


def test_every_address_refused_is_a_connect_error_naming_them(
    make_client: Callable[..., rawkeep.Client], refused_url: str
) -> None:
    port = int(refused_url.rsplit(":", 1)[1])
    with refusing("::1", port):
        client = make_client(resolve=DUAL)
        with pytest.raises(rawkeep.ConnectError) as caught:
            client.get(f"http://dual.test:{port}/")
    assert type(caught.value) is rawkeep.ConnectError
    assert caught.value.message == (
        f"could not connect to dual.test:{port} (::1, 127.0.0.1): Connection refused"
    )


def test_the_connect_timeout_bounds_the_whole_race(
    make_client: Callable[..., rawkeep.Client],
) -> None:
    with black_hole("127.0.0.1", 0) as port, black_hole("::1", port):
        client = make_client(timeout=0.6, resolve=DUAL)
        before = fd_count()
        started = time.monotonic()
        with pytest.raises(rawkeep.ConnectTimeout) as caught:
            client.get(f"http://dual.test:{port}/")
        elapsed = time.monotonic() - started
        assert fd_count() == before  # both attempts closed
    assert 0.55 <= elapsed < 0.6 + 0.75, elapsed  # not 0.6 per address
    assert caught.value.message == (
        f"connect to dual.test:{port} (::1, 127.0.0.1) timed out after 0.6 s"
    )


def test_a_connect_limit_of_zero_is_a_connect_timeout(
    make_client: Callable[..., rawkeep.Client], server: ScriptedServer
) -> None:
    client = make_client(timeout=rawkeep.Timeout(5.0, connect=0))
    with pytest.raises(rawkeep.ConnectTimeout) as caught:
        client.get(server.url)
    assert caught.value.message == f"connect to 127.0.0.1:{server.port} timed out after 0.0 s"


def test_a_literal_host_is_not_looked_up(
    make_client: Callable[..., rawkeep.Client],
    server: ScriptedServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flags: list[int] = []
    real = socket.getaddrinfo

    def recording(*args: Any, **kwargs: Any) -> Any:
        flags.append(kwargs.get("flags", 0))
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording)
    client = make_client()
    assert client.get(server.url).status == 200
    assert flags, "the address was not parsed at all"
    assert all(flag & socket.AI_NUMERICHOST for flag in flags)  # parsed, never resolved


@pytest.mark.slow
@pytest.mark.skipif(bool(unavailable()), reason=unavailable() or "")
def test_through_the_system_resolver_in_a_namespace() -> None:
    """Both clients, in one child process, through ``getaddrinfo``."""
    hosts = "::1 dual.test\n127.0.0.1 dual.test\n"
    with namespace("eyeballs", hosts=hosts) as space:
        result = space.run("eyeballs")
    assert result["order"] == ["::1", "127.0.0.1"], "the black hole must be tried first"
    for kind in ("sync", "async"):
        outcome = result[kind]
        assert outcome["status"] == 200, kind
        assert ATTEMPT_DELAY * 0.9 <= outcome["elapsed"] < RACE_LIMIT, (kind, outcome)
        # While pooled: the winner and the server's end of it, no loser.
        before, pooled, after = outcome["fds"]
        assert (pooled, after) == (before + 2, before), (kind, outcome)
