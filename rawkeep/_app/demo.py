"""``rawkeep demo``: the keep-alive lifecycle, step by step, with no network.

Each step starts a ``LabServer`` on 127.0.0.1 that behaves in one telling
way, sends a few requests through a fresh ``Client`` and prints, between short
paragraphs of narration, the connection story as it happens (the same lines as
``rawkeep -v``). Every step also checks that the story went as told: a demo
that narrates one thing while the events say another would teach it wrong, so
a mismatch ends the demo with exit status 1.

Waits are short and bounded (the longest is 0.8 s, the whole demo takes about
two seconds); every server and client is closed on every path.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import time
from typing import IO, TYPE_CHECKING, Final

from .._client import Client
from .._exceptions import RawkeepError, RemoteProtocolError
from .exitcodes import ExitCode, silence_stdout
from .labserver import Behaviour, LabServer
from .story import Story, duration

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._models import Response

__all__ = ["main"]

#: Per-phase time limit of the demo's clients: loopback answers in
#: microseconds, so anything near this is a bug worth an error, not a hang.
TIMEOUT: Final = 5.0
#: Requests per variant in the closing measurement.
MEASURED_REQUESTS: Final = 200


class _StepFailed(Exception):
    """The events did not tell the story the narration promised."""


class _Narrator:
    """Prints narration, and makes the stories and clients of each step."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.story = Story(out, indent="    ")

    def title(self, number: int, text: str) -> None:
        self.out.write(f"\n\n{number}. {text}\n{'-' * (len(text) + 3)}\n")

    def say(self, text: str) -> None:
        """Print paragraphs (split at blank lines), each refilled, after a blank line."""
        paragraphs = textwrap.dedent(text).strip().split("\n\n")
        filled = [textwrap.fill(" ".join(p.split()), width=78) for p in paragraphs]
        self.out.write("\n" + "\n\n".join(filled) + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        self.out.write(f"    ({text})\n")
        self.out.flush()

    def client(self, idle_timeout: float = 30.0) -> Client:
        """A new client whose story is told here, with a new ``story``."""
        self.story = Story(self.out, indent="    ", idle_timeout=idle_timeout)
        return Client(timeout=TIMEOUT, idle_timeout=idle_timeout, on_event=self.story)

    def exchange(self, client: Client, url: str, method: str = "GET") -> Response:
        """One request, its story told line by line, body read."""
        self.story.request(method, url)
        content = b"one order" if method == "POST" else None
        with client.stream(method, url, content=content) as response:
            self.story.response(response)
            body = response.read()
            self.story.body_done(response, len(body))
        return response


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise _StepFailed(what)


# -- the steps ------------------------------------------------------------------------------


def step_reuse(n: _Narrator) -> None:
    n.say("""
        HTTP/1.1 connections stay open after a response unless one side says
        otherwise (RFC 9112 section 9.3): nobody has to ask for keep-alive.
        Three GETs through one Client to a server that keeps connections open:
    """)
    with LabServer() as server, n.client() as client:
        for path in ("/a", "/b", "/c"):
            n.exchange(client, server.url + path)
        stats = client.pool_stats()
    _expect(stats.opened == 1 and stats.reused == 2, "one connection for three requests")
    n.say("""
        One TCP connection carried all three: the first request paid for the
        connect, the next two went out at once on the open connection.
    """)


def step_idle_timeout(n: _Narrator) -> None:
    n.say("""
        A pooled connection is not kept forever. Client(idle_timeout=0.25)
        retires a connection that sat idle longer than 0.25 s (the default
        is 30 s), even though this server would happily keep it open:
    """)
    with LabServer() as server, n.client(idle_timeout=0.25) as client:
        n.exchange(client, server.url + "/a")
        n.note("waiting 0.35 s")
        time.sleep(0.35)
        n.exchange(client, server.url + "/b")
        stats = client.pool_stats()
    _expect(stats.opened == 2 and stats.reused == 0, "the idle connection expired")
    n.say("""
        The expired connection was closed before use, and the request went
        out on a new one. Keep the client's idle timeout below the server's,
        so that the client, not the server, decides when an idle connection ends.
    """)


def step_server_keep_alive(n: _Narrator) -> None:
    n.say("""
        Many servers (Apache, Node.js, ...) announce their limits in a
        Keep-Alive header: "timeout=1, max=2" means "I close connections
        idle for 1 s, and I take 2 more requests on this one". rawkeep
        honours both, and retires a connection before the server would close it.
        This server allows 3 requests per connection and 1 s of idleness:
    """)
    behaviour = Behaviour(keep_alive_timeout=1, keep_alive_max=3)
    with LabServer(behaviour) as server, n.client() as client:
        for path in ("/1", "/2", "/3", "/4"):
            n.exchange(client, server.url + path)
        n.note("waiting 0.8 s: less than the server's 1 s")
        time.sleep(0.8)
        n.exchange(client, server.url + "/5")
        stats = client.pool_stats()
    _expect(stats.opened == 3 and stats.reused == 2, "retired by the server's limits")
    n.say("""
        Connection #0 was retired after "max=0", and #1 after 0.8 s idle:
        rawkeep stops reusing a connection a safety margin (a quarter of the
        timeout, at most 1 s) before the server's deadline, so a request is
        never sent into a connection the server is about to close.
    """)


def step_connection_close(n: _Narrator) -> None:
    n.say("""
        "Connection: close" in a request or a response ends the connection
        after that response. This server sends it every time, so each request
        needs a new TCP connection (HTTP/1.0 responses behave the same way):
    """)
    with LabServer(Behaviour(connection_close=True)) as server, n.client() as client:
        n.exchange(client, server.url + "/a")
        n.exchange(client, server.url + "/b")
        stats = client.pool_stats()
    _expect(stats.opened == 2 and stats.reused == 0, "no reuse after Connection: close")


def step_stale(n: _Narrator) -> None:
    n.say("""
        Servers and load balancers also close idle connections without any
        notice. This server drops a connection idle for 0.2 s, with no header
        saying so; the client would have kept it for 30 s:
    """)
    with LabServer(Behaviour(drop_idle_after=0.2)) as server, n.client() as client:
        n.exchange(client, server.url + "/a")
        _expect(server.wait_for_idle_closes(1, timeout=2.0), "the server dropped it")
        time.sleep(0.05)  # let the server's FIN land in our socket
        n.note("the server has closed connection #0 in silence")
        n.exchange(client, server.url + "/b")
        stats = client.pool_stats()
    _expect(stats.opened == 2 and stats.reused == 0, "the stale connection was skipped")
    n.say("""
        Before reusing an idle connection, rawkeep polls its socket without
        waiting. An idle HTTP/1.1 connection must never be readable: if it is,
        the server has closed it (or sent bytes nobody asked for). So the dead
        connection was discarded unused and the request never noticed.
    """)


def step_race(n: _Narrator) -> None:
    n.say("""
        The probe can't see a close that is still on its way: the server may
        close an idle connection just as our next request goes out on it. To
        make that moment happen every time, this server reads the second
        request of each connection and hangs up without a word:
    """)
    with LabServer(Behaviour(hang_up_on_request=2)) as server, n.client() as client:
        n.exchange(client, server.url + "/a")
        n.exchange(client, server.url + "/b")
        _expect(n.story.retries == 1, "the GET was retried")
        n.say("""
            No byte of a response came back, so the server most likely never
            acted on the GET, and a GET is idempotent: sending it twice has
            the effect of sending it once (RFC 9110 section 9.2.2). RFC 9112
            section 9.3.1 allows a retry in exactly this case, and rawkeep
            makes one, on a new connection. Now a POST meets the same fate:
        """)
        try:
            n.exchange(client, server.url + "/order", method="POST")
        except RemoteProtocolError as exc:
            n.out.write(f"    ! RemoteProtocolError: {exc}\n")
        else:
            raise _StepFailed("the POST should have failed")
    n.say("""
        A POST may have been acted on (an order placed, a message sent) even
        though no answer came; sending it again could do it twice. So rawkeep
        raises instead and leaves that decision to the program.
    """)


def step_cost(n: _Narrator) -> None:
    n.say(f"""
        What does reuse save? {MEASURED_REQUESTS} GETs to one server, through
        one pooled Client, then with a new Client (so a new connection) for
        each request, as a script calling requests.get() in a loop does:
    """)
    with LabServer() as server:
        url = server.url + "/"
        rows = [
            ("one pooled Client", *_measure(server, lambda: _pooled(url))),
            ("a new Client per request", *_measure(server, lambda: _unpooled(url))),
        ]
    n.out.write(f"\n    {'':<26}{'requests':>9}{'connections':>13}{'total':>11}{'each':>10}\n")
    for name, connections, elapsed in rows:
        each = duration(elapsed / MEASURED_REQUESTS)
        n.out.write(
            f"    {name:<26}{MEASURED_REQUESTS:>9}{connections:>13}"
            f"{duration(elapsed):>11}{each:>10}\n"
        )
    (_, pooled_conns, pooled), (_, _, unpooled) = rows
    _expect(pooled_conns == 1, "the pooled client used one connection")
    n.say(f"""
        Here, on loopback, where a TCP handshake takes a fraction of a
        millisecond, not reusing made each request {unpooled / pooled:.1f} times
        as slow (the handshake, a new client, and the server's own work for each
        new connection). Across a network each new connection costs at least one more
        round trip (tens of milliseconds between continents), and TLS adds one
        or two more: that is what keep-alive saves.
    """)


def _measure(server: LabServer, run: Callable[[], None]) -> tuple[int, float]:
    """Connections the server accepted during ``run``, and its seconds."""
    before = server.accepted
    started = time.perf_counter()
    run()
    return server.accepted - before, time.perf_counter() - started


def _pooled(url: str) -> None:
    with Client(timeout=TIMEOUT) as client:
        for _ in range(MEASURED_REQUESTS):
            client.get(url)


def _unpooled(url: str) -> None:
    for _ in range(MEASURED_REQUESTS):
        with Client(timeout=TIMEOUT) as client:
            client.get(url)


STEPS: Final[list[tuple[str, Callable[[_Narrator], None]]]] = [
    ("Reuse: one connection, many requests", step_reuse),
    ("The client's idle timeout", step_idle_timeout),
    ("The server's Keep-Alive: timeout and max", step_server_keep_alive),
    ("Connection: close", step_connection_close),
    ("A server that drops idle connections, and the stale probe", step_stale),
    ("The keep-alive race, a safe retry, and a POST that is not retried", step_race),
    ("The cost of not reusing connections", step_cost),
]

_INTRO: Final = """
    rawkeep demo: the life of keep-alive connections, against a small HTTP/1.1
    server running inside this process on 127.0.0.1 (no network needed).

    Story lines: "*" is what happened to a connection, ">" a request sent,
    "<" the response status and the headers that decide the connection's fate.
"""


def main(argv: list[str]) -> int:
    """Run ``rawkeep demo [STEP ...]``; 0 when every step told its story."""
    parser = argparse.ArgumentParser(
        prog="rawkeep demo",
        description="Walk through keep-alive against a built-in local server.",
        epilog="Steps: " + "; ".join(f"{i}. {t}" for i, (t, _) in enumerate(STEPS, 1)),
    )
    parser.add_argument("steps", nargs="*", type=int, metavar="STEP", help="default: all")
    args = parser.parse_args(argv)
    if not all(1 <= number <= len(STEPS) for number in args.steps):
        parser.error(f"steps are numbered 1 to {len(STEPS)}")
    try:
        return _run(args.steps or list(range(1, len(STEPS) + 1)))
    except KeyboardInterrupt:
        sys.stderr.write("rawkeep demo: interrupted\n")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        silence_stdout()  # the reader went away (`rawkeep demo | head`)
        return ExitCode.OUTPUT


def _run(steps: list[int]) -> int:
    narrator = _Narrator(sys.stdout)
    narrator.say(_INTRO)
    started = time.perf_counter()
    for number in steps:
        title, step = STEPS[number - 1]
        narrator.title(number, title)
        try:
            step(narrator)
        except (_StepFailed, RawkeepError) as exc:
            sys.stdout.flush()
            sys.stderr.write(f"rawkeep demo: step {number} went wrong: {exc}\n")
            return ExitCode.ERROR
    narrator.say(f"""
        Done in {duration(time.perf_counter() - started)}. Run `rawkeep -v URL URL`
        to see the story of your own server's connections.
    """)
    return ExitCode.OK
