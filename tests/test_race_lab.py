"""The keep-alive race lab in the suite: a real Node.js server, both clients.

``benchmarks/race_server.js`` (Node's http server with an idle timer of its
own, millisecond-precise) closes each connection idle for T seconds after
its last response. Each case below is one way servers behave; each runs a
client through three phases on one pool:

1. learn: GETs after pauses clearly past T (the connections are found
   closed, which teaches a silent server's limit);
2. GETs after pauses swept around T, where a request and the server's
   close can cross on the wire;
3. POSTs after the same pauses, each with a unique id in its body.

What must hold, on ``Client`` and ``AsyncClient``: no GET and no POST
fails, the server answers every POST id exactly once, and the pool says
what it learned (or that there was nothing to learn, when the server
announced its limits). ``benchmarks/race_lab.py`` is the same lab with the
peers beside rawkeep and more pauses; docs/reliability.md has its table.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from servers.figures import record

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from servers.recorder import EventRecorder

    import rawkeep

pytestmark = [pytest.mark.both_clients, pytest.mark.slow]

NODE = shutil.which("node")
SERVER_JS = Path(__file__).resolve().parent.parent / "benchmarks" / "race_server.js"

#: The server's idle limit, seconds.
T = 0.3
#: Pauses of the sweep: 1 ms apart, from 3 ms short of T to 1 ms past it.
SWEEP = [T + (i - 3) * 0.001 for i in range(5)] * 2


@dataclass
class RaceServer:
    """One ``race_server.js`` process."""

    url: str
    process: subprocess.Popen[str]

    def stop(self) -> tuple[collections.Counter[str], int]:
        """How often each POST body was answered, and the connections accepted."""
        self.process.terminate()
        out, _ = self.process.communicate(timeout=10)
        lines = out.splitlines()
        posts = collections.Counter(line[5:] for line in lines if line.startswith("POST "))
        return posts, lines.count("CONN")


@pytest.fixture
def start_race_server() -> Iterator[Callable[..., RaceServer]]:
    """``start_race_server(announce=0, max_=0, change_after=0, new_limit=0)``."""
    if NODE is None:
        pytest.skip("node is not installed (apt-get install nodejs; .ci/run installs it)")
    assert NODE is not None
    started: list[subprocess.Popen[str]] = []

    def start(
        announce: float = 0, max_: int = 0, change_after: int = 0, new_limit: float = 0
    ) -> RaceServer:
        argv = [str(T), str(announce), str(max_), str(change_after), str(new_limit)]
        process = subprocess.Popen(
            [NODE, str(SERVER_JS), *argv], stdout=subprocess.PIPE, text=True
        )
        started.append(process)
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("PORT "), line
        return RaceServer(f"http://127.0.0.1:{int(line.split()[1])}", process)

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)


@dataclass
class Tally:
    calls: int = 0
    errors: int = 0
    get_errors: int = 0
    posts_sent: int = 0


def run_phases(
    client: rawkeep.Client, url: str, learn_pause: float | None, sweep: list[float]
) -> Tally:
    """The three phases (see the module docstring); a failed call is
    counted, never raised, so that the tally is complete."""
    tally = Tally()

    def call(method: str) -> None:
        tally.calls += 1
        body = None
        if method == "POST":
            tally.posts_sent += 1
            body = b"id=%d" % tally.posts_sent
        try:
            ok = client.request(method, url, content=body).status == 200
        except Exception:  # what the user would see: counted, never raised
            ok = False
        if not ok:
            tally.errors += 1
            tally.get_errors += method == "GET"

    call("GET")
    for pause in [learn_pause] * 4 if learn_pause is not None else []:
        time.sleep(pause)
        call("GET")
    for method in ("GET", "POST"):
        for pause in sweep:
            time.sleep(pause)
            call(method)
    return tally


def check(
    name: str,
    server: RaceServer,
    client: rawkeep.Client,
    events: EventRecorder,
    tally: Tally,
) -> list[float]:
    """Nothing failed, every POST answered once; the limits learned."""
    client.close()
    posts, connections = server.stop()
    assert tally.errors == 0, tally
    # Every POST id answered exactly once: none lost, none sent twice.
    assert posts == collections.Counter(f"id={i}" for i in range(1, tally.posts_sent + 1))
    learned = [float(e.idle_limit) for e in events.of_type("IdleLimitLearned") if e.idle_limit]
    record(
        "race_lab",
        name,
        {
            "calls": tally.calls,
            "errors": tally.errors,
            "connections": connections,
            "retried": events.count("RequestRetried"),
            "learned": learned,
        },
    )
    return learned


def test_silent_server_is_learned_then_no_request_fails(
    start_race_server: Callable[..., RaceServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    server = start_race_server()
    tally = run_phases(client, server.url, T + 0.1, SWEEP)
    learned = check("silent", server, client, events, tally)
    assert learned, "the pool never learned the limit"
    assert T - 0.01 <= learned[-1] <= T + 0.1


def test_announced_limit_needs_no_learning(
    start_race_server: Callable[..., RaceServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    # "Keep-Alive: timeout=T": retired at T less its margin from the first
    # response on; nothing is found closed, nothing is learned.
    server = start_race_server(announce=T)
    tally = run_phases(client, server.url, None, SWEEP)
    assert check("header", server, client, events, tally) == []
    assert events.count("StaleConnectionDiscarded") == 0
    expired = events.of_type("ConnectionExpired")
    assert len(expired) == len(SWEEP) * 2
    assert {e.reason for e in expired} == {"server_keep_alive"}


def test_apache_style_max_is_counted_down(
    start_race_server: Callable[..., RaceServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    # "max=3" on a connection's first response: 3 further requests, and the
    # fourth response says "Connection: close". Short pauses: max, not the
    # timer, ends each connection.
    server = start_race_server(announce=T, max_=3)
    tally = run_phases(client, server.url, None, [0.01] * 6)
    check("max", server, client, events, tally)
    assert tally.calls == 13
    assert client.pool_stats().opened == 4  # 4 + 4 + 4 + 1 requests
    assert events.count("StaleConnectionDiscarded") == 0


def test_server_closing_earlier_than_announced_is_learned(
    start_race_server: Callable[..., RaceServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    # It announces twice its real limit: the closes teach the real one,
    # which then retires connections before the announced one would.
    server = start_race_server(announce=2 * T)
    tally = run_phases(client, server.url, T + 0.1, SWEEP)
    learned = check("early", server, client, events, tally)
    assert learned, "the pool never learned the limit below the announced one"
    assert learned[-1] <= T + 0.1 < 2 * T


def test_limit_lowered_mid_run_is_learned_again(
    start_race_server: Callable[..., RaceServer],
    client: rawkeep.Client,
    events: EventRecorder,
) -> None:
    # After its 6th request (the learn phase) the server closes idle
    # connections after T/2: the sweeps around T/2 meet the lower limit.
    server = start_race_server(change_after=6, new_limit=T / 2)
    half = [pause / 2 for pause in SWEEP]
    tally = run_phases(client, server.url, T + 0.1, [T / 2 + 0.05] * 4 + half)
    learned = check("change", server, client, events, tally)
    assert len(learned) >= 2, learned
    assert learned[0] > T - 0.02
    assert T / 2 - 0.01 <= learned[-1] <= T / 2 + 0.05
