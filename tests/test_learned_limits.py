"""A server that closes idle connections on a timer and says nothing: the
pool learns the limit from the closes, over real sockets, in both clients.

The server drops each connection 0.3 s after its last response, without a
``Keep-Alive`` header. Requests sent after longer pauses find their
connections closed (the stale probe; on Linux the kernel times the FIN),
which teaches the pool the limit; then it retires connections before it,
and keeps requests that can't be sent again further inside it.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable

    from servers.recorder import EventRecorder
    from servers.scripted import ScriptedServer

    import rawkeep

pytestmark = pytest.mark.both_clients

LIMIT = 0.3


def learn_limit(client: rawkeep.Client, url: str, events: EventRecorder) -> float:
    """Pause past the server's limit between GETs until the pool learns it
    (two closes after the same idle time; a few more on a busy machine)."""
    client.get(url)
    for _ in range(8):
        time.sleep(LIMIT + 0.15)
        assert client.get(url).reused is False  # the idle one was closed
        learned = events.of_type("IdleLimitLearned")
        if learned:
            limit = learned[-1].idle_limit
            assert limit is not None
            return float(limit)
    raise AssertionError("the pool never learned the server's idle limit")


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel times the FIN on Linux only")
def test_the_limit_is_learned_from_the_kernels_timing_of_the_close(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    server = start_keepalive_server(idle_close_after=LIMIT)
    limit = learn_limit(client, server.url, events)

    assert LIMIT - 0.01 <= limit <= LIMIT + 0.1
    [lesson] = events.of_type("IdleLimitLearned")
    assert lesson.evidence == "fin"
    assert lesson.origin == server.url.rstrip("/")
    per_host = client.pool_stats().per_host[lesson.origin]
    assert per_host.learned_idle_limit == limit


def test_once_learned_connections_are_retired_before_the_limit(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    server = start_keepalive_server(idle_close_after=LIMIT)
    limit = learn_limit(client, server.url, events)
    stale_before = events.count("StaleConnectionDiscarded")

    client.get(server.url)
    time.sleep(limit + 0.1)  # past the limit: the pool knows, no probe needed
    assert client.get(server.url).reused is False

    assert events.count("StaleConnectionDiscarded") == stale_before
    assert events.summary()[-2:] == [
        ("ConnectionExpired", "server_keep_alive"),
        ("ConnectionOpened", None),
    ]


def test_a_post_keeps_further_inside_the_limit_than_a_get(
    start_keepalive_server: Callable[..., ScriptedServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    server = start_keepalive_server(idle_close_after=LIMIT)
    limit = learn_limit(client, server.url, events)
    # GETs reuse until a quarter before the limit, POSTs until half before.
    pause = limit * 0.62

    client.get(server.url)
    time.sleep(pause)
    post = client.post(server.url, content=b"order")
    assert post.reused is False  # a fresh connection: nothing to lose

    time.sleep(pause)
    assert client.get(server.url).reused is True  # a GET may go closer
    assert client.pool_stats().active == 0
