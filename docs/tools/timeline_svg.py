"""The drawing half of docs/tools/timeline.py: a recorded trace as an SVG.

One lane per connection, the requests on it as bars, rawkeep's events as
marks with labels, the server's own closes as crosses, dashed lines where
rawkeep stopped counting on an idle connection, and a time axis. Every
scenario of timeline.py is drawn by this one ``render``; what differs
between them (titles, the dashed lines, notes) comes in a ``Picture``. The
SVG is written by hand, with the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final
from xml.sax.saxutils import escape

import rawkeep

# -- what is drawn ---------------------------------------------------------------------


@dataclass
class Trace:
    events: list[rawkeep.Event] = field(default_factory=list)
    #: (method, path, start, end, connection id) per request, times from time.time().
    requests: list[tuple[str, str, float, float, int]] = field(default_factory=list)
    #: (connection id, time, why, seconds it had been idle) of the server's own closes.
    server_closes: list[tuple[int, float, str, float]] = field(default_factory=list)
    start: float = 0.0


@dataclass(frozen=True)
class Limit:
    """A dashed line across a lane: the moment past which rawkeep no longer
    reuses the idle connection (for some requests), with its label."""

    connection_id: int
    at: float
    words: str
    #: Pixels under the lane's line of the label's baseline, the line
    #: reaching down to it; None: the label above the lane's line, in the
    #: first free row.
    below: int | None = 50
    colour: str = "#d08a00"


@dataclass(frozen=True)
class Note:
    """Words under a lane at a moment, placed like an event's label."""

    connection_id: int
    at: float
    words: str
    colour: str = "#333333"


@dataclass(frozen=True)
class Picture:
    """What a scenario adds to its trace to make its picture."""

    title: str
    subtitle: str
    #: Label of the server's idle closes; ``{idle}`` is how long the
    #: connection had been idle (seconds).
    idle_close: str = "server closes (idle)"
    limits: tuple[Limit, ...] = ()
    notes: tuple[Note, ...] = ()


# -- the canvas ------------------------------------------------------------------------

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
    "IdleLimitLearned": ("#138d75", "learned"),
}
#: Marks drawn as a ring around the spot rather than a dot: they come at
#: the same moment as another event of the same connection.
RINGS: Final = frozenset({"IdleLimitLearned"})


@dataclass
class Canvas:
    start: float
    end: float
    lanes: int
    parts: list[str] = field(default_factory=list)
    #: Per lane, the right edge (px) of the last label in each label row,
    #: under the lane's line and above it.
    label_rows: dict[int, list[float]] = field(default_factory=dict)
    rows_above: dict[int, list[float]] = field(default_factory=dict)

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
        row = _first_row(self.label_rows.setdefault(lane, []), left, left + width)
        y = self.lane_y(lane) + 24 + 13 * row
        self.add(
            f"<line x1='{x:.1f}' y1='{self.lane_y(lane) + 7:.1f}' x2='{x:.1f}' "
            f"y2='{y - 9:.1f}' stroke='{colour}' stroke-width='0.8' stroke-dasharray='2,2'/>"
        )
        if left < x:
            self.text(x - 2, y, words, fill=colour, text_anchor="end")
        else:
            self.text(x + 2, y, words, fill=colour)

    def limit(self, lane: int, x: float, words: str, colour: str) -> None:
        """A dashed line across the lane, its label above the lane's line and
        left of it, in the first row where it fits."""
        width = 5.8 * len(words) + 8
        row = _first_row(self.rows_above.setdefault(lane, []), x - width, x)
        y = self.lane_y(lane) - 26 - 12 * row
        self.add(
            f"<line x1='{x:.1f}' y1='{y - 8:.1f}' x2='{x:.1f}' y2='{self.lane_y(lane) + 7:.1f}' "
            f"stroke='{colour}' stroke-width='2' stroke-dasharray='4,3'/>"
        )
        self.text(x - 4, y, words, size=10, fill=colour, text_anchor="end")


def _first_row(rows: list[float], left: float, right: float) -> int:
    """The first row whose last label ends before ``left`` (a new row if
    none), now ending at ``right``."""
    for row, end in enumerate(rows):
        if left >= end:
            rows[row] = right
            return row
    rows.append(right)
    return len(rows) - 1


# -- the picture -----------------------------------------------------------------------


def render(trace: Trace, picture: Picture) -> str:
    """The SVG text of the picture."""
    opened = {
        event.connection_id: event.time
        for event in trace.events
        if isinstance(event, rawkeep.ConnectionOpened)
    }
    last = max(event.time for event in trace.events)
    end = last + (last - trace.start) * 0.04
    canvas = Canvas(start=trace.start, end=end, lanes=len(opened))
    _draw_frame(canvas, picture)
    _draw_axis(canvas)
    ends = connection_ends(trace)
    for lane, connection_id in enumerate(sorted(opened)):
        span = (opened[connection_id], ends.get(connection_id, end))
        _draw_lane(canvas, trace, picture, lane, connection_id, span)
    _draw_legend(canvas, trace)
    canvas.add("</svg>")
    return "\n".join(canvas.parts) + "\n"


def _draw_frame(canvas: Canvas, picture: Picture) -> None:
    canvas.add(
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{canvas.height}' "
        f"viewBox='0 0 {WIDTH} {canvas.height}'>"
    )
    canvas.add(f"<rect width='{WIDTH}' height='{canvas.height}' fill='white'/>")
    canvas.text(LEFT, 28, picture.title, size=15, font_weight="bold")
    canvas.text(LEFT, 48, picture.subtitle, size=11, fill="#444444")


def _event_label(event: rawkeep.Event) -> str:
    colour_label = STYLE[type(event).__name__][1]
    if isinstance(event, rawkeep.ConnectionExpired | rawkeep.ConnectionClosed):
        return f"{colour_label}: {event.reason}"
    if isinstance(event, rawkeep.ConnectionReused):
        return f"{colour_label} (idle {event.idle_for * 1000:.0f} ms)"
    if isinstance(event, rawkeep.RequestRetried):
        return f"{colour_label}: {event.method} on a new connection"
    if isinstance(event, rawkeep.IdleLimitLearned):
        if event.idle_limit is None:
            return f"limit forgotten ({event.evidence})"
        return f"{colour_label} {event.idle_limit:.2f} s ({event.evidence})"
    return colour_label


def connection_ends(trace: Trace) -> dict[int, float]:
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
    canvas: Canvas,
    trace: Trace,
    picture: Picture,
    lane: int,
    connection_id: int,
    span: tuple[float, float],
) -> None:
    """One connection: its line from ``span[0]`` to ``span[1]``, its
    requests, the dashed limits, the server's closes and rawkeep's events."""
    y = canvas.lane_y(lane)
    opened, ended = span
    canvas.text(16, y + 4, f"connection #{connection_id}", size=12, font_weight="bold")
    canvas.add(
        f"<line x1='{canvas.x(opened):.1f}' y1='{y}' x2='{canvas.x(ended):.1f}' y2='{y}' "
        f"stroke='#9aa5b1' stroke-width='3'/>"
    )
    for method, path, started, finished, used in trace.requests:
        if used == connection_id:
            _draw_request(canvas, y, max(started, opened), finished, f"{method} {path}")
    for attempt_start, failed, words in _failed_attempts(trace, connection_id):
        _draw_request(canvas, y, attempt_start, failed, words, answered=False)
    for limit in picture.limits:
        if limit.connection_id == connection_id and limit.below is not None:
            _draw_limit(canvas, y, limit, limit.below)
    for index, moment, why, idle in trace.server_closes:
        if index == connection_id:
            words = picture.idle_close.format(idle=idle) if why == "idle" else "server hangs up"
            _draw_server_close(canvas, canvas.x(moment), y, words)
    for limit in sorted(picture.limits, key=lambda limit: limit.at):
        if limit.connection_id == connection_id and limit.below is None:
            canvas.limit(lane, canvas.x(limit.at), limit.words, limit.colour)
    for moment, kind, words, colour in _lane_labels(trace, picture, connection_id):
        x = canvas.x(moment)
        if kind != "note":
            _draw_mark(canvas, x, y, kind)
        canvas.label(lane, x, words, colour)


def _lane_labels(
    trace: Trace, picture: Picture, connection_id: int
) -> list[tuple[float, str, str, str]]:
    """(moment, kind, words, colour) of the labels under a lane, in time
    order: the events' (kind: the event's name) and the notes ("note")."""
    labels = [
        (event.time, type(event).__name__, _event_label(event), STYLE[type(event).__name__][0])
        for event in trace.events
        if event.connection_id == connection_id
    ]
    labels.extend(
        (note.at, "note", note.words, note.colour)
        for note in picture.notes
        if note.connection_id == connection_id
    )
    return sorted(labels, key=lambda label: label[0])


def _draw_request(
    canvas: Canvas, y: float, started: float, finished: float, words: str, *, answered: bool = True
) -> None:
    x = canvas.x(started)
    width = max(canvas.x(finished) - x, 5.0)
    style = "fill='#1f3b57'" if answered else "fill='white' stroke='#c0392b' stroke-width='2'"
    canvas.add(f"<rect x='{x:.1f}' y='{y - 7}' width='{width:.1f}' height='14' rx='2' {style}/>")
    canvas.text(x + width / 2, y - 11, words, size=10, text_anchor="middle")


def _failed_attempts(trace: Trace, connection_id: int) -> list[tuple[float, float, str]]:
    """(start, failure, "METHOD /path") of the attempts on this connection
    that were retried elsewhere: from the event that handed it out to the
    retry."""
    attempts = []
    handed_out: float | None = None
    for event in trace.events:
        if event.connection_id != connection_id:
            continue
        if isinstance(event, rawkeep.ConnectionOpened | rawkeep.ConnectionReused):
            handed_out = event.time
        elif isinstance(event, rawkeep.RequestRetried) and handed_out is not None:
            path = "/" + event.url.split("/", 3)[3]
            attempts.append((handed_out, event.time, f"{event.method} {path}"))
    return attempts


def _draw_limit(canvas: Canvas, y: float, limit: Limit, below: int) -> None:
    x = canvas.x(limit.at)
    canvas.add(
        f"<line x1='{x:.1f}' y1='{y - 16}' x2='{x:.1f}' y2='{y + below + 4}' "
        f"stroke='{limit.colour}' stroke-width='2' stroke-dasharray='4,3'/>"
    )
    canvas.text(x - 4, y + below, limit.words, size=10, fill=limit.colour, text_anchor="end")


def _draw_server_close(canvas: Canvas, x: float, y: float, words: str) -> None:
    canvas.add(
        f"<path d='M{x - 5:.1f},{y - 5} L{x + 5:.1f},{y + 5} M{x - 5:.1f},{y + 5} "
        f"L{x + 5:.1f},{y - 5}' stroke='#000000' stroke-width='2'/>"
    )
    canvas.text(x, y - 24, words, size=10, text_anchor="middle", fill="#000000")


def _draw_mark(canvas: Canvas, x: float, y: float, name: str) -> None:
    colour = STYLE[name][0]
    if name in RINGS:
        canvas.add(
            f"<circle cx='{x:.1f}' cy='{y}' r='9' fill='none' stroke='{colour}' "
            f"stroke-width='2.5'/>"
        )
    else:
        canvas.add(
            f"<circle cx='{x:.1f}' cy='{y}' r='5' fill='{colour}' stroke='white' "
            f"stroke-width='1'/>"
        )


# -- the legend ------------------------------------------------------------------------


def _draw_legend(canvas: Canvas, trace: Trace) -> None:
    """What the shapes mean, and the marks of the events in the picture."""
    y = TOP + canvas.lanes * LANE + AXIS + 22
    x = float(LEFT)
    canvas.add(f"<rect x='{x}' y='{y - 7}' width='16' height='14' rx='2' fill='#1f3b57'/>")
    canvas.text(x + 22, y + 4, "request in flight")
    x += 130
    if any(isinstance(event, rawkeep.RequestRetried) for event in trace.events):
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
    _draw_legend_marks(canvas, y + 24, {type(event).__name__ for event in trace.events})


def _draw_legend_marks(canvas: Canvas, y: int, names: set[str]) -> None:
    x = float(LEFT)
    for name, (colour, words) in STYLE.items():
        if name not in names:
            continue
        if name in RINGS:
            canvas.add(
                f"<circle cx='{x + 5}' cy='{y}' r='5' fill='none' stroke='{colour}' "
                f"stroke-width='2'/>"
            )
        else:
            canvas.add(f"<circle cx='{x + 5}' cy='{y}' r='5' fill='{colour}'/>")
        canvas.text(x + 14, y + 4, f"{words} ({name})", size=10)
        x += 14 + 6.0 * len(f"{words} ({name})") + 18
        if x > WIDTH - 200:
            x = float(LEFT)
            y += 18
