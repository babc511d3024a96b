"""Draw docs/keep-alive-timeline.svg from a real trace of rawkeep's events.

Runs one scenario against a small HTTP/1.1 server on 127.0.0.1, records
every event rawkeep reports through ``on_event`` (with its timestamp) and
every request the scenario makes, and draws them as an SVG picture: one lane
per connection, the requests on it as bars, the events as marks with
labels, the server's own closes as crosses, and a time axis. The SVG is
written by hand, with the standard library only.

The scenario, one client, one request at a time:

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

    python docs/tools/timeline.py [--output FILE.svg] [--trace FILE.jsonl]
"""

from __future__ import annotations

import argparse
import json
import socketserver
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from xml.sax.saxutils import escape

import rawkeep

REPO: Final = Path(__file__).resolve().parent.parent.parent
DEFAULT_OUTPUT: Final = REPO / "docs" / "keep-alive-timeline.svg"

#: The server's announced (and enforced) keep-alive timeout for the paths of
#: step 1, and its silent idle limit for every other path, in seconds.
ANNOUNCED_TIMEOUT: Final = 1
SILENT_IDLE_CLOSE: Final = 0.6
#: Paths answered with ``Keep-Alive: timeout=1``; the one that is never
#: answered on a reused connection.
ANNOUNCING_PATHS: Final = ("/a", "/b", "/c")
HANG_UP_PATH: Final = "/g"
#: Upper bound (seconds) for every wait of the server and the client.
MAX_WAIT: Final = 5.0


# -- the server ------------------------------------------------------------------------


class Server(socketserver.ThreadingTCPServer):
    """The scenario's HTTP/1.1 server; ``closes`` records when and why it
    closed each connection (by accept order)."""

    daemon_threads = False
    block_on_close = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ServerConnection)
        self.lock = threading.Lock()
        self.accepted = 0
        self.closes: list[tuple[int, float, str]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Server:
        thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        self.server_close()

    def note_close(self, index: int, why: str) -> None:
        with self.lock:
            self.closes.append((index, time.time(), why))


class _ServerConnection(socketserver.BaseRequestHandler):
    server: Server

    def handle(self) -> None:
        server = self.server
        with server.lock:
            index = server.accepted
            server.accepted += 1
        idle_limit = MAX_WAIT
        served = 0
        buffer = b""
        while True:
            self.request.settimeout(idle_limit)
            while b"\r\n\r\n" not in buffer:
                try:
                    data = self.request.recv(65536)
                except TimeoutError:
                    server.note_close(index, "idle")
                    return
                if not data:
                    return  # the client closed it
                buffer += data
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            path = head.split(b" ")[1].decode("ascii")
            if path == HANG_UP_PATH and served:
                server.note_close(index, "hang-up")
                return
            served += 1
            body = f"{path} answered on connection {index}\n".encode()
            announce = path in ANNOUNCING_PATHS
            extra = f"Keep-Alive: timeout={ANNOUNCED_TIMEOUT}\r\n" if announce else ""
            head_out = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
            self.request.sendall(head_out.encode() + body)
            idle_limit = ANNOUNCED_TIMEOUT if announce else SILENT_IDLE_CLOSE


# -- the trace -------------------------------------------------------------------------


@dataclass
class Trace:
    events: list[rawkeep.Event] = field(default_factory=list)
    #: (path, start, end, connection id) per request, times from time.time().
    requests: list[tuple[str, float, float, int]] = field(default_factory=list)
    #: (connection id, time, why) of the server's own closes.
    server_closes: list[tuple[int, float, str]] = field(default_factory=list)
    start: float = 0.0


def record() -> Trace:
    """Play the scenario; return what happened."""
    trace = Trace()
    lock = threading.Lock()

    def on_event(event: rawkeep.Event) -> None:
        with lock:
            trace.events.append(event)

    def get(client: rawkeep.Client, server: Server, path: str) -> None:
        started = time.time()
        response = client.get(server.url + path)
        trace.requests.append((path, started, time.time(), response.connection_id))

    with Server() as server:
        trace.start = time.time()
        with rawkeep.Client(on_event=on_event, timeout=MAX_WAIT) as client:
            for path in ANNOUNCING_PATHS:
                get(client, server, path)
                time.sleep(0.3)
            time.sleep(1.3 - 0.3)  # past the announced timeout
            get(client, server, "/d")
            time.sleep(0.3)
            get(client, server, "/e")
            time.sleep(0.9)  # past the silent idle limit
            get(client, server, "/f")
            time.sleep(0.3)
            get(client, server, HANG_UP_PATH)
            time.sleep(0.3)
            get(client, server, "/h")
            time.sleep(0.2)
        trace.server_closes = list(server.closes)
    check(trace)
    return trace


def check(trace: Trace) -> None:
    """The picture must show the story it is meant to: fail loudly if the
    run did not (a very slow machine could miss a timing)."""
    names = [type(event).__name__ for event in trace.events]
    for wanted in ("ConnectionExpired", "StaleConnectionDiscarded", "RequestRetried"):
        if wanted not in names:
            raise SystemExit(f"the run produced no {wanted}: {names}")


def write_trace(trace: Trace, path: Path) -> None:
    with path.open("w", encoding="utf-8") as file:
        for event in trace.events:
            file.write(json.dumps(event.to_dict()) + "\n")


# -- the picture -----------------------------------------------------------------------

WIDTH: Final = 980
LEFT: Final = 120  # room for the lane labels
RIGHT: Final = 30
TOP: Final = 70
LANE: Final = 92  # height of one connection's lane
AXIS: Final = 50
LEGEND: Final = 70
FONT: Final = "font-family='DejaVu Sans, Verdana, sans-serif'"

#: Colour and label of each mark.
STYLE: Final = {
    "ConnectionOpened": ("#2b7bba", "opened"),
    "ConnectionReused": ("#3a9d5d", "reused"),
    "ConnectionExpired": ("#d08a00", "expired"),
    "StaleConnectionDiscarded": ("#c0392b", "stale: discarded"),
    "ConnectionClosed": ("#555555", "closed"),
    "RequestRetried": ("#8e44ad", "retried"),
}


@dataclass
class Canvas:
    start: float
    end: float
    lanes: int
    parts: list[str] = field(default_factory=list)
    #: Per lane, the right edge (px) of the last label in each label row.
    label_rows: dict[int, list[float]] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return TOP + self.lanes * LANE + AXIS + LEGEND

    def x(self, moment: float) -> float:
        span = max(self.end - self.start, 1e-6)
        return LEFT + (moment - self.start) / span * (WIDTH - LEFT - RIGHT)

    def lane_y(self, lane: int) -> float:
        return TOP + lane * LANE + 22

    def add(self, text: str) -> None:
        self.parts.append(text)

    def text(self, x: float, y: float, words: str, *, size: int = 11, **attrs: str) -> None:
        extra = "".join(f" {name.replace('_', '-')}='{value}'" for name, value in attrs.items())
        self.add(
            f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' {FONT}{extra}>"
            f"{escape(words)}</text>"
        )

    def label(self, lane: int, x: float, words: str, colour: str) -> None:
        """A label under the lane's line, in the first row where it fits;
        written leftwards from the mark when it would leave the picture."""
        width = 6.6 * len(words) + 12
        left = x - width if x + width > WIDTH - 4 else x
        rows = self.label_rows.setdefault(lane, [])
        for row, right in enumerate(rows):
            if left >= right:
                rows[row] = left + width
                break
        else:
            row = len(rows)
            rows.append(left + width)
        y = self.lane_y(lane) + 24 + 13 * row
        self.add(
            f"<line x1='{x:.1f}' y1='{self.lane_y(lane) + 7:.1f}' x2='{x:.1f}' "
            f"y2='{y - 9:.1f}' stroke='{colour}' stroke-width='0.8' stroke-dasharray='2,2'/>"
        )
        if left < x:
            self.text(x - 2, y, words, fill=colour, text_anchor="end")
        else:
            self.text(x + 2, y, words, fill=colour)


def _event_label(event: rawkeep.Event) -> str:
    colour_label = STYLE[type(event).__name__][1]
    if isinstance(event, rawkeep.ConnectionExpired):
        return f"{colour_label}: {event.reason}"
    if isinstance(event, rawkeep.ConnectionClosed):
        return f"{colour_label}: {event.reason}"
    if isinstance(event, rawkeep.ConnectionReused):
        return f"{colour_label} (idle {event.idle_for * 1000:.0f} ms)"
    if isinstance(event, rawkeep.RequestRetried):
        return f"{colour_label}: {event.method} on a new connection"
    return colour_label


def _ends(trace: Trace) -> dict[int, float]:
    """When each connection's life ended, from the client's events."""
    ends: dict[int, float] = {}
    for event in trace.events:
        if isinstance(
            event,
            rawkeep.ConnectionExpired
            | rawkeep.StaleConnectionDiscarded
            | rawkeep.ConnectionClosed,
        ):
            ends[event.connection_id] = event.time
    return ends


def render(trace: Trace) -> str:
    """The SVG text of the picture."""
    opened = {
        event.connection_id: event.time
        for event in trace.events
        if isinstance(event, rawkeep.ConnectionOpened)
    }
    lanes = sorted(opened)
    last = max(event.time for event in trace.events)
    end = last + (last - trace.start) * 0.04
    canvas = Canvas(start=trace.start, end=end, lanes=len(lanes))
    canvas.add(
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{canvas.height}' "
        f"viewBox='0 0 {WIDTH} {canvas.height}'>"
    )
    canvas.add(f"<rect width='{WIDTH}' height='{canvas.height}' fill='white'/>")
    canvas.text(
        LEFT,
        28,
        "One rawkeep client, one server: the life of each connection (a recorded run)",
        size=15,
        font_weight="bold",
    )
    canvas.text(
        LEFT,
        48,
        f"server: Keep-Alive: timeout={ANNOUNCED_TIMEOUT} for /a /b /c, then silent closes "
        f"after {SILENT_IDLE_CLOSE} s idle, and a hang-up on {HANG_UP_PATH}",
        size=11,
        fill="#444444",
    )
    _draw_axis(canvas)
    ends = _ends(trace)
    for lane, connection_id in enumerate(lanes):
        _draw_lane(
            canvas, trace, lane, connection_id, opened[connection_id], ends.get(connection_id, end)
        )
    _draw_legend(canvas)
    canvas.add("</svg>")
    return "\n".join(canvas.parts) + "\n"


def _draw_axis(canvas: Canvas) -> None:
    y = TOP + canvas.lanes * LANE + 10
    canvas.add(f"<line x1='{LEFT}' y1='{y}' x2='{WIDTH - RIGHT}' y2='{y}' stroke='#333333'/>")
    tick = 0.0
    while canvas.start + tick <= canvas.end:
        x = canvas.x(canvas.start + tick)
        canvas.add(f"<line x1='{x:.1f}' y1='{TOP - 8}' x2='{x:.1f}' y2='{y}' stroke='#eeeeee'/>")
        canvas.add(f"<line x1='{x:.1f}' y1='{y}' x2='{x:.1f}' y2='{y + 5}' stroke='#333333'/>")
        canvas.text(x, y + 18, f"{tick:.2f} s", size=10, text_anchor="middle", fill="#333333")
        tick += 0.25
    canvas.text(
        WIDTH - RIGHT,
        y + 34,
        "time since the first request",
        size=10,
        text_anchor="end",
        fill="#333333",
    )


def _draw_lane(
    canvas: Canvas, trace: Trace, lane: int, connection_id: int, opened: float, ended: float
) -> None:
    y = canvas.lane_y(lane)
    canvas.text(16, y + 4, f"connection #{connection_id}", size=12, font_weight="bold")
    canvas.add(
        f"<line x1='{canvas.x(opened):.1f}' y1='{y}' x2='{canvas.x(ended):.1f}' y2='{y}' "
        f"stroke='#9aa5b1' stroke-width='3'/>"
    )
    for path, started, finished, used in trace.requests:
        if used == connection_id:
            _draw_request(canvas, y, max(started, opened), finished, f"GET {path}")
    for attempt_start, failed, path in _failed_attempts(trace, connection_id):
        _draw_request(canvas, y, attempt_start, failed, f"GET {path}", answered=False)
    if connection_id == 0:
        _draw_reuse_limit(canvas, trace, y)
    for index, moment, why in trace.server_closes:
        if index != connection_id:
            continue
        x = canvas.x(moment)
        canvas.add(
            f"<path d='M{x - 5:.1f},{y - 5} L{x + 5:.1f},{y + 5} M{x - 5:.1f},{y + 5} "
            f"L{x + 5:.1f},{y - 5}' stroke='#000000' stroke-width='2'/>"
        )
        words = "server closes (idle)" if why == "idle" else "server hangs up"
        canvas.text(x, y - 24, words, size=10, text_anchor="middle", fill="#000000")
    for event in trace.events:
        if event.connection_id != connection_id:
            continue
        colour = STYLE[type(event).__name__][0]
        x = canvas.x(event.time)
        canvas.add(
            f"<circle cx='{x:.1f}' cy='{y}' r='5' fill='{colour}' stroke='white' "
            f"stroke-width='1'/>"
        )
        canvas.label(lane, x, _event_label(event), colour)


def _draw_request(
    canvas: Canvas, y: float, started: float, finished: float, words: str, *, answered: bool = True
) -> None:
    x = canvas.x(started)
    width = max(canvas.x(finished) - x, 5.0)
    style = "fill='#1f3b57'" if answered else "fill='white' stroke='#c0392b' stroke-width='2'"
    canvas.add(f"<rect x='{x:.1f}' y='{y - 7}' width='{width:.1f}' height='14' rx='2' {style}/>")
    canvas.text(x + width / 2, y - 11, words, size=10, text_anchor="middle")


def _failed_attempts(trace: Trace, connection_id: int) -> list[tuple[float, float, str]]:
    """(start, failure, path) of the attempts on this connection that were
    retried elsewhere: from the event that handed it out to the retry."""
    attempts = []
    handed_out: float | None = None
    for event in trace.events:
        if event.connection_id != connection_id:
            continue
        if isinstance(event, rawkeep.ConnectionOpened | rawkeep.ConnectionReused):
            handed_out = event.time
        elif isinstance(event, rawkeep.RequestRetried) and handed_out is not None:
            path = "/" + event.url.split("/", 3)[3]
            attempts.append((handed_out, event.time, path))
    return attempts


def _draw_reuse_limit(canvas: Canvas, trace: Trace, y: float) -> None:
    """Where rawkeep stopped considering connection #0 reusable: the end of
    its last response plus the server's timeout less the margin."""
    ends = [finished for _, _, finished, used in trace.requests if used == 0]
    margin = min(1.0, ANNOUNCED_TIMEOUT / 4)  # docs/keep-alive.md
    x = canvas.x(max(ends) + ANNOUNCED_TIMEOUT - margin)
    canvas.add(
        f"<line x1='{x:.1f}' y1='{y - 16}' x2='{x:.1f}' y2='{y + 54}' stroke='#d08a00' "
        f"stroke-width='2' stroke-dasharray='4,3'/>"
    )
    canvas.text(
        x - 4,
        y + 50,
        f"reusable until here: timeout={ANNOUNCED_TIMEOUT} s less a {margin:g} s margin",
        size=10,
        fill="#d08a00",
        text_anchor="end",
    )


def _draw_legend(canvas: Canvas) -> None:
    y = TOP + canvas.lanes * LANE + AXIS + 22
    x = float(LEFT)
    canvas.add(f"<rect x='{x}' y='{y - 7}' width='16' height='14' rx='2' fill='#1f3b57'/>")
    canvas.text(x + 22, y + 4, "request in flight")
    x += 130
    canvas.add(
        f"<rect x='{x}' y='{y - 7}' width='16' height='14' rx='2' fill='white' "
        f"stroke='#c0392b' stroke-width='2'/>"
    )
    canvas.text(x + 22, y + 4, "no answer")
    x += 95
    canvas.add(
        f"<line x1='{x}' y1='{y}' x2='{x + 24}' y2='{y}' stroke='#9aa5b1' stroke-width='3'/>"
    )
    canvas.text(x + 30, y + 4, "connection open (idle between requests)")
    x += 265
    canvas.add(
        f"<path d='M{x - 5},{y - 5} L{x + 5},{y + 5} M{x - 5},{y + 5} L{x + 5},{y - 5}' "
        f"stroke='#000000' stroke-width='2'/>"
    )
    canvas.text(x + 12, y + 4, "the server closes its end")
    x = float(LEFT)
    y += 24
    for name, (colour, words) in STYLE.items():
        canvas.add(f"<circle cx='{x + 5}' cy='{y}' r='5' fill='{colour}'/>")
        canvas.text(x + 14, y + 4, f"{words} ({name})", size=10)
        x += 14 + 6.0 * len(f"{words} ({name})") + 18
        if x > WIDTH - 200:
            x = float(LEFT)
            y += 18


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the SVG to write")
    parser.add_argument("--trace", type=Path, help="also write the events as JSON lines")
    args = parser.parse_args()
    trace = record()
    if args.trace is not None:
        write_trace(trace, args.trace)
    args.output.write_text(render(trace), encoding="utf-8")
    print(f"wrote {args.output} ({len(trace.events)} events, {len(trace.requests)} requests)")


if __name__ == "__main__":
    main()
