"""Draw the keep-alive pictures of docs/keep-alive.md from real traces.

Runs a scenario against a small HTTP/1.1 server on 127.0.0.1, records
every event rawkeep reports through ``on_event`` (with its timestamp),
every request the scenario makes and the server's own closes, and draws
them as an SVG picture (timeline_svg.py): one lane per connection, the
requests on it as bars, the events as marks with labels, the server's
closes as crosses, and a time axis.

Each scenario has one client sending one request at a time.

``lifecycle`` (the default; docs/keep-alive-timeline.svg):

1. three requests 300 ms apart on one connection; the server answers with
   ``Keep-Alive: timeout=1``;
2. 1.3 s idle, past that timeout: the server closes the connection, and
   rawkeep has retired it already (``ConnectionExpired``) when the next
   request comes, which opens a new one;
3. the server now sends no ``Keep-Alive`` header and silently closes
   connections idle for 0.6 s; after 0.9 s idle the stale probe finds the
   connection closed (``StaleConnectionDiscarded``) and a new one is opened;
4. the server reads the next request on that reused connection and hangs
   up without answering (the keep-alive race): rawkeep retries the GET on a
   new connection (``RequestRetried``);
5. one more request, then the client is closed.

``learning`` (docs/keep-alive-learning.svg): the server never sends a
``Keep-Alive`` header and closes connections idle for 0.6 s.

1. pauses of 0.8 s: each time the stale probe finds the idle connection
   closed, and the kernel dates the server's FIN 0.6 s after the
   connection went idle; the first close is only a candidate, the second,
   after the same idle time, is the limit (``IdleLimitLearned``): two
   pauses, unless a busy machine delays a close;
2. pauses of 0.5 s, past the limit less its margin (0.6 - 0.15 s): rawkeep
   retires the idle connection itself (``ConnectionExpired``, reason
   ``server_keep_alive``) before the server closes it; a 0.3 s pause in
   between reuses the connection;
3. after a 0.35 s pause, a POST: it keeps twice the margin (0.6 - 0.3 s),
   so it goes on a new connection where a GET would have reused the idle
   one.

    python docs/tools/timeline.py [--scenario lifecycle|learning]
                                  [--output FILE.svg] [--trace FILE.jsonl]
"""

from __future__ import annotations

import argparse
import json
import socketserver
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from timeline_svg import Limit, Note, Picture, Trace, connection_ends, render

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Callable

REPO: Final = Path(__file__).resolve().parent.parent.parent

#: The server's announced (and enforced) keep-alive timeout for the paths a
#: scenario names, and its silent idle limit for every other path, in seconds.
ANNOUNCED_TIMEOUT: Final = 1
SILENT_IDLE_CLOSE: Final = 0.6
#: Upper bound (seconds) for every wait of the server and the client.
MAX_WAIT: Final = 5.0


# -- the server ------------------------------------------------------------------------


class Server(socketserver.ThreadingTCPServer):
    """A scenario's HTTP/1.1 server; ``closes`` records when and why it
    closed each connection (by accept order), and how long it had been idle.

    Args:
        announcing: paths answered with ``Keep-Alive: timeout=1``.
        hang_up: a path never answered on a reused connection.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(self, announcing: tuple[str, ...] = (), hang_up: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _ServerConnection)
        self.announcing = announcing
        self.hang_up = hang_up
        self.lock = threading.Lock()
        self.accepted = 0
        self.closes: list[tuple[int, float, str, float]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Server:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        self.server_close()

    def next_index(self) -> int:
        with self.lock:
            self.accepted += 1
            return self.accepted - 1

    def note_close(self, index: int, why: str, idle_since: float) -> None:
        moment = time.time()
        with self.lock:
            self.closes.append((index, moment, why, moment - idle_since))


class _ServerConnection(socketserver.BaseRequestHandler):
    server: Server

    def handle(self) -> None:
        server = self.server
        index = server.next_index()
        self.buffer = b""
        idle_limit = MAX_WAIT
        idle_since = time.time()
        served = 0
        while True:
            try:
                path = self._read_request(idle_limit)
            except TimeoutError:
                server.note_close(index, "idle", idle_since)
                return
            if path is None:
                return  # the client closed it
            if path == server.hang_up and served:
                server.note_close(index, "hang-up", idle_since)
                return
            served += 1
            announce = path in server.announcing
            body = f"{path} answered on connection {index}\n".encode()
            extra = f"Keep-Alive: timeout={ANNOUNCED_TIMEOUT}\r\n" if announce else ""
            head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            self.request.sendall(head.encode() + body)
            idle_since = time.time()
            idle_limit = ANNOUNCED_TIMEOUT if announce else SILENT_IDLE_CLOSE

    def _read_request(self, idle_limit: float) -> str | None:
        """The next request's path (its body read and dropped); None when
        the client closed the connection.

        Raises:
            TimeoutError: nothing came for ``idle_limit`` seconds.
        """
        self.request.settimeout(idle_limit)
        while b"\r\n\r\n" not in self.buffer:
            if not self._receive():
                return None
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buffer) < length:
            if not self._receive():
                return None
        self.buffer = self.buffer[length:]
        return head.split(b" ")[1].decode("ascii")

    def _receive(self) -> bool:
        data: bytes = self.request.recv(65536)
        self.buffer += data
        return bool(data)


# -- recording a run -------------------------------------------------------------------


class Run:
    """A scenario's client and server, and what happened so far."""

    def __init__(self, client: rawkeep.Client, server: Server, trace: Trace) -> None:
        self.client = client
        self.server = server
        self.trace = trace

    def send(self, path: str, pause: float, method: str = "GET") -> None:
        """One request (a POST carries a small body), then ``pause`` seconds
        of idleness."""
        started = time.time()
        content = b"an order" if method == "POST" else None
        response = self.client.request(method, self.server.url + path, content=content)
        finished = time.time()
        self.trace.requests.append((method, path, started, finished, response.connection_id))
        time.sleep(pause)


@dataclass(frozen=True)
class Scenario:
    output: Path
    #: Paths the server answers with ``Keep-Alive: timeout=1``.
    announcing: tuple[str, ...]
    #: A path the server never answers on a reused connection.
    hang_up: str | None
    play: Callable[[Run], None]
    #: Raises SystemExit when the run did not show what the picture is for.
    check: Callable[[Trace], None]
    picture: Callable[[Trace], Picture]


def record(scenario: Scenario) -> Trace:
    """Play the scenario; return what happened."""
    trace = Trace()
    lock = threading.Lock()

    def on_event(event: rawkeep.Event) -> None:
        with lock:
            trace.events.append(event)

    with Server(scenario.announcing, scenario.hang_up) as server:
        trace.start = time.time()
        with rawkeep.Client(on_event=on_event, timeout=MAX_WAIT) as client:
            scenario.play(Run(client, server, trace))
        trace.server_closes = list(server.closes)
    scenario.check(trace)
    return trace


def _require(trace: Trace, *wanted: str) -> None:
    """The picture must show the story it is meant to: fail loudly if the
    run did not (a very slow machine could miss a timing)."""
    names = [type(event).__name__ for event in trace.events]
    for name in wanted:
        if name not in names:
            raise SystemExit(f"the run produced no {name}: {names}")


def write_trace(trace: Trace, path: Path) -> None:
    with path.open("w", encoding="utf-8") as file:
        for event in trace.events:
            file.write(json.dumps(event.to_dict()) + "\n")


# -- lifecycle: announced timeout, stale probe, race -----------------------------------

HANG_UP_PATH: Final = "/g"


def play_lifecycle(run: Run) -> None:
    run.send("/a", 0.3)
    run.send("/b", 0.3)
    run.send("/c", 1.3)  # past the announced timeout
    run.send("/d", 0.3)
    run.send("/e", 0.9)  # past the silent idle limit
    run.send("/f", 0.3)
    run.send(HANG_UP_PATH, 0.3)
    run.send("/h", 0.2)


def check_lifecycle(trace: Trace) -> None:
    _require(trace, "ConnectionExpired", "StaleConnectionDiscarded", "RequestRetried")


def picture_lifecycle(trace: Trace) -> Picture:
    """Where rawkeep stopped considering connection #0 reusable: the end of
    its last response plus the server's timeout less the margin."""
    ends = [finished for _, _, _, finished, used in trace.requests if used == 0]
    margin = min(1.0, ANNOUNCED_TIMEOUT / 4)  # docs/keep-alive.md
    words = f"reusable until here: timeout={ANNOUNCED_TIMEOUT} s less a {margin:g} s margin"
    return Picture(
        title="One rawkeep client, one server: the life of each connection (a recorded run)",
        subtitle=f"server: Keep-Alive: timeout={ANNOUNCED_TIMEOUT} for /a /b /c, then silent "
        f"closes after {SILENT_IDLE_CLOSE} s idle, and a hang-up on {HANG_UP_PATH}",
        limits=(Limit(0, max(ends) + ANNOUNCED_TIMEOUT - margin, words),),
    )


LIFECYCLE: Final = Scenario(
    output=REPO / "docs" / "keep-alive-timeline.svg",
    announcing=("/a", "/b", "/c"),
    hang_up=HANG_UP_PATH,
    play=play_lifecycle,
    check=check_lifecycle,
    picture=picture_lifecycle,
)


# -- learning: a silent server's idle limit --------------------------------------------


def play_learning(run: Run) -> None:
    paths = iter("/" + letter for letter in "abcdefghijklmnop")
    # Pauses past the server's 0.6 s: the request after each finds the
    # connection closed. The first close is a candidate, the next after the
    # same idle time the limit; a busy machine may take one or two more.
    for _ in range(6):
        run.send(next(paths), 0.0)
        if any(isinstance(event, rawkeep.IdleLimitLearned) for event in run.trace.events):
            break
        time.sleep(0.8)
    time.sleep(0.5)  # past 0.6 s less the 0.15 s margin: retired
    run.send(next(paths), 0.3)  # within it: reused
    run.send(next(paths), 0.5)  # retired again
    run.send(next(paths), 0.35)  # a GET would reuse it; a POST keeps 0.3 s
    run.send(next(paths), 0.2, method="POST")


def _learned(trace: Trace) -> rawkeep.IdleLimitLearned:
    for event in trace.events:
        if isinstance(event, rawkeep.IdleLimitLearned) and event.idle_limit is not None:
            return event
    raise SystemExit(f"the run learned no idle limit: {trace.events}")


def check_learning(trace: Trace) -> None:
    learned = _learned(trace)
    after = [event for event in trace.events if event.time >= learned.time]
    expired = [
        event
        for event in after
        if isinstance(event, rawkeep.ConnectionExpired) and event.reason == "server_keep_alive"
    ]
    if abs((learned.idle_limit or 0) - SILENT_IDLE_CLOSE) > 0.02 or len(expired) < 2:
        raise SystemExit(f"learned {learned}, then expired {expired}")
    if any(isinstance(event, rawkeep.StaleConnectionDiscarded) for event in after):
        raise SystemExit(f"the server closed a connection first after learning: {after}")
    post = next(request for request in trace.requests if request[0] == "POST")
    if sum(1 for request in trace.requests if request[4] == post[4]) != 1:
        raise SystemExit(f"the POST reused an idle connection: {trace.requests}")


def _idle_stretches(trace: Trace) -> list[tuple[int, float, float]]:
    """(connection id, start, end) of each time a connection sat idle: from
    a response to the next request on it, or to its end."""
    ends = connection_ends(trace)
    stretches = []
    for _, _, _, finished, used in trace.requests:
        later = [
            started
            for _, _, started, _, other in trace.requests
            if other == used and started > finished
        ]
        stretches.append((used, finished, min(later, default=ends.get(used, finished))))
    return stretches


def _learned_limits(trace: Trace, learned: rawkeep.IdleLimitLearned) -> tuple[Limit, ...]:
    """Where rawkeep stopped reusing each connection that sat idle after
    learning: for GETs, the limit less the margin; while a POST was sent,
    the limit less twice the margin."""
    limit = learned.idle_limit or 0.0
    margin = min(1.0, limit / 4)  # docs/keep-alive.md
    posts = [started for method, _, started, _, _ in trace.requests if method == "POST"]
    limits = []
    for connection_id, start, end in _idle_stretches(trace):
        if start < learned.time:
            continue
        if end - start > limit - margin:
            words = f"GETs: until here ({limit:.2f} - {margin:.2f} s)"
            limits.append(Limit(connection_id, start + limit - margin, words, None))
        if any(start + limit - 2 * margin < post < end for post in posts):
            words = f"a POST: until here ({limit:.2f} - {2 * margin:.2f} s)"
            limits.append(Limit(connection_id, start + limit - 2 * margin, words, None, "#a0522d"))
    return tuple(limits)


def picture_learning(trace: Trace) -> Picture:
    learned = _learned(trace)
    first_stale = next(
        event
        for event in trace.events
        if isinstance(event, rawkeep.StaleConnectionDiscarded) and event.time < learned.time
    )
    return Picture(
        title="How rawkeep learns a silent server's idle limit (a recorded run)",
        subtitle=f"server: no Keep-Alive header, closes connections idle for "
        f"{SILENT_IDLE_CLOSE} s; client: 0.8 s pauses until it has learned, then 0.5, 0.3, "
        f"0.5 s and a POST after 0.35 s",
        idle_close="server closes: {idle:.2f} s idle",
        limits=_learned_limits(trace, learned),
        notes=(Note(first_stale.connection_id, first_stale.time, "1st close: a candidate only"),),
    )


LEARNING: Final = Scenario(
    output=REPO / "docs" / "keep-alive-learning.svg",
    announcing=(),
    hang_up=None,
    play=play_learning,
    check=check_learning,
    picture=picture_learning,
)

SCENARIOS: Final = {"lifecycle": LIFECYCLE, "learning": LEARNING}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="lifecycle")
    parser.add_argument("--output", type=Path, help="the SVG to write (default: the docs')")
    parser.add_argument("--trace", type=Path, help="also write the events as JSON lines")
    args = parser.parse_args()
    scenario = SCENARIOS[args.scenario]
    output: Path = args.output or scenario.output
    trace = record(scenario)
    if args.trace is not None:
        write_trace(trace, args.trace)
    output.write_text(render(trace, scenario.picture(trace)), encoding="utf-8")
    print(f"wrote {output} ({len(trace.events)} events, {len(trace.requests)} requests)")


if __name__ == "__main__":
    main()
