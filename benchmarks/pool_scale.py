"""The pool at scale: its cost per operation as origins and idle connections grow.

    python benchmarks/pool_scale.py            # both parts, about 2-3 minutes
    python benchmarks/pool_scale.py --quick    # shorter runs, well under a minute
    python benchmarks/pool_scale.py --parts core --origins 1,1000,100000

Part 1, the core alone (``rawkeep._pool_core.PoolCore``, no socket, no
thread, no lock): N origins, each with one idle connection (a stand-in with
a real ``rawkeep._keepalive.Lifetime``), and a fake clock passed in as
``now``. Measured per N:

(a) a hot origin's ``take_freshest`` + ``checkin``, the common path;
(b) ``checkout`` + ``checkin`` with the clock moved one ``SWEEP_INTERVAL``
    every time, so that every call sweeps (nothing is due);
(c) expiry: the clock moves so that a slice of connections is due at each
    sweep; the checkout that sweeps, per expired connection (slices of 1 and
    of 100), the expired connections then replaced so N stays the same;
(d) eviction at the overall limit (``max_connections = N``, all of them
    idle): a new origin's whole cycle, the checkout that evicts the longest
    idle connection of another origin, the checkout that reserves the slot,
    ``opened`` and ``checkin``.

Each figure is the median over repeats of microseconds per operation
(``time.perf_counter_ns`` around a batch; the garbage collector off while
timing, as ``timeit`` does). Every measure at every N is set up first, and
the repeats run them all in rounds, in a fresh random order each, so that a
busy moment of a shared machine spreads over all of them. Memory is
measured with ``tracemalloc``: the core's books per idle connection and per
origin, and what it keeps for an origin whose connections have all closed.

Part 2, through real sockets: one server process on 127.0.0.1 (a selector
loop, like ``quick_get.py``'s, answering every request with the same small
response and keeping connections open) listening on 1 + K ports, one
origin each. For each K, a ``rawkeep.Client`` and a raw-socket client (one
kept socket, ``sendall`` of pre-built request bytes, ``recv`` of the fixed
response: the floor) each first make K other origins idle, one connection
each; then both send N sequential GETs to the hot origin. Every K's pair
lives side by side in this process and all of them run interleaved, in a
fresh random order each round, so that a busy moment of a shared machine
hits every row alike; ratios are computed per round. The benchmark raises
its own ``RLIMIT_NOFILE`` to the hard limit (the library never does).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import multiprocessing
import os
import platform
import random
import resource
import selectors
import socket
import statistics
import struct
import sys
import time
import tracemalloc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final, TypeAlias, TypeVar

HERE: Final = Path(__file__).resolve().parent
sys.path.insert(1, str(HERE.parent))

from quick_get import RESPONSE  # noqa: E402

import rawkeep  # noqa: E402
from rawkeep._keepalive import ExpiryRules, Lifetime  # noqa: E402
from rawkeep._pool_core import SWEEP_INTERVAL, PoolCore  # noqa: E402
from rawkeep._url import Origin, Route  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from multiprocessing.connection import Connection

K = TypeVar("K")

HOST: Final = "127.0.0.1"
BODY: Final = RESPONSE.partition(b"\r\n\r\n")[2]
#: The fake clock's start (any value: the core only compares and subtracts).
T0: Final = 1000.0
#: An idle timeout no fake clock in this script reaches.
LONG: Final = 1e9
#: Connections per sweep in the expiry measure's larger slice.
SLICE: Final = 100
#: The server process stops by itself after this long, or when we are gone.
SERVER_LIFETIME: Final = 1800.0
#: Seconds any socket wait of the socket part may take.
SOCKET_TIMEOUT: Final = 10.0


@dataclass(frozen=True)
class Settings:
    """How much work each measure does."""

    origins: tuple[int, ...] = (1, 10, 100, 1_000, 10_000, 100_000)
    repeats: int = 15
    hot_ops: int = 5_000
    sweep_ops: int = 2_000
    expiry_steps: int = 200
    slice_steps: int = 10
    #: Evictions per repeat: this many divided by N, within [5, 2000].
    evict_work: int = 300_000
    memory_origins: tuple[int, ...] = (10_000, 100_000)
    others: tuple[int, ...] = (0, 1_000, 4_000)
    requests: int = 5_000
    rounds: int = 7


FULL: Final = Settings()
QUICK: Final = Settings(
    repeats=3,
    hot_ops=2_000,
    sweep_ops=500,
    expiry_steps=50,
    slice_steps=4,
    evict_work=30_000,
    memory_origins=(10_000,),
    requests=500,
    rounds=2,
)


# -- part 1: the core alone ----------------------------------------------------


class FakeConnection:
    """A connection as the core sees it (its ``Pooled`` protocol): identity,
    route, a real ``Lifetime``, and the verdict of an exchange that went
    well, as class attributes (a connection that served before)."""

    __slots__ = ("id", "life", "route")

    reused = True
    close_reason = None
    response_started = True
    is_reusable = True

    def __init__(self, ident: int, route: Route, now: float) -> None:
        self.id = ident
        self.route = route
        self.life = Lifetime(now)
        self.life.responses = 1

    def carries_unretryable(self) -> bool:
        return True


Core = PoolCore[FakeConnection]


def make_routes(count: int, prefix: str = "o") -> list[Route]:
    """``count`` distinct origins (the core's keys), as the URL parser makes them."""
    return [Route(Origin("http", f"{prefix}{i}.test", 80)) for i in range(count)]


def new_core(rules: ExpiryRules, max_connections: int | None = None) -> Core:
    return PoolCore(
        max_connections=max_connections, max_connections_per_host=None, rules=rules, now=T0
    )


def rules_with(idle_timeout: float) -> ExpiryRules:
    return ExpiryRules(idle_timeout=idle_timeout, max_requests=None, max_age=None)


def add_idle(core: Core, conn: FakeConnection, now: float) -> None:
    """What a shell does for a new connection: reserve a slot, open, and
    give it back after its exchange; it is then idle."""
    taken, doomed, reserved = core.checkout(conn.route, now, fresh=True, retryable=True)
    if taken is not None or doomed or not reserved:
        raise RuntimeError(f"no slot for a new connection to {conn.route}")
    core.opened(conn.route)
    if core.checkin(conn, now) is not None:
        raise RuntimeError("a new connection was closed on check-in")


@contextlib.contextmanager
def gc_off() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


#: A batch of operations, timed: (nanoseconds, operations).
Batch: TypeAlias = "Callable[[], tuple[int, int]]"


def interleaved(batches: dict[K, Batch], repeats: int, rng: random.Random) -> dict[K, float]:
    """Median microseconds per operation of each batch: a warm-up each, then
    ``repeats`` rounds running every batch once, in a fresh random order, so
    that a busy moment of the machine spreads over all of them."""
    per_op: dict[K, list[float]] = {key: [] for key in batches}
    keys = list(batches)
    with gc_off():
        for batch in batches.values():
            batch()
        for _ in range(repeats):
            rng.shuffle(keys)
            for key in keys:
                elapsed, ops = batches[key]()
                per_op[key].append(elapsed / ops / 1000)
    return {key: statistics.median(values) for key, values in per_op.items()}


class Clock:
    """The fake clock a measure moves."""

    def __init__(self, now: float) -> None:
        self.now = now


def setup_hot_and_sweep(
    routes: Sequence[Route], hot: Route, s: Settings
) -> tuple[Batch, Batch, Callable[[], None]]:
    """(a) take_freshest + checkin on the hot origin, the clock still;
    (b) checkout + checkin, the clock one sweep interval on each time.
    Both on one core, and the check to run afterwards."""
    core = new_core(rules_with(LONG))
    for i, route in enumerate(routes):
        add_idle(core, FakeConnection(i, route, T0), T0)
    add_idle(core, FakeConnection(len(routes), hot, T0), T0)
    clock = Clock(T0)

    def hot_cycles() -> tuple[int, int]:
        take, checkin, now, ops = core.take_freshest, core.checkin, clock.now, s.hot_ops
        if core.checkin(_must(take(hot, now, True)), now) is not None:
            raise RuntimeError("the hot connection was not kept")
        start = time.perf_counter_ns()
        for _ in range(ops):
            checkin(take(hot, now, True), now)  # type: ignore[arg-type]
        return time.perf_counter_ns() - start, ops

    def sweep_cycles() -> tuple[int, int]:
        checkout, checkin, now, ops = core.checkout, core.checkin, clock.now, s.sweep_ops
        conn, doomed = None, []
        start = time.perf_counter_ns()
        for _ in range(ops):
            now += SWEEP_INTERVAL
            conn, doomed, _ = checkout(hot, now, fresh=False, retryable=True)
            checkin(conn, now)  # type: ignore[arg-type]
        elapsed = time.perf_counter_ns() - start
        if conn is None or doomed:
            raise RuntimeError("the sweep measure met an expiry or no idle connection")
        clock.now = now
        return elapsed, ops

    return hot_cycles, sweep_cycles, lambda: _check_idle(core, len(routes) + 1)


def setup_expiry(
    routes: Sequence[Route], per_sweep: int, steps: int
) -> tuple[Batch, Callable[[], None]]:
    """(c) The checkout whose sweep expires ``per_sweep`` connections, per
    expired connection. Connections go idle a slice per sweep interval, the
    idle timeout spans all slices, and each step moves the clock one
    interval: one slice is due at each sweep, and is replaced (untimed) by
    fresh idle connections that come due one timeout later. The checkout is
    for an origin with nothing idle: it sweeps, then reserves a slot (given
    back, untimed)."""
    n = len(routes)
    slices = n // per_sweep
    core = new_core(rules_with(slices * SWEEP_INTERVAL))
    for i, route in enumerate(routes):
        add_idle(core, FakeConnection(i, route, T0), T0 + (i // per_sweep) * SWEEP_INTERVAL)
    clock = Clock(T0 + (slices - 1) * SWEEP_INTERVAL)
    probe = Route(Origin("http", "probe.test", 80))
    ids = [n]

    def expiries() -> tuple[int, int]:
        checkout = core.checkout
        elapsed = expired = 0
        for _ in range(steps):
            now = clock.now = clock.now + SWEEP_INTERVAL
            start = time.perf_counter_ns()
            _, doomed, reserved = checkout(probe, now, fresh=False, retryable=True)
            elapsed += time.perf_counter_ns() - start
            if not reserved or len(doomed) != per_sweep:
                raise RuntimeError(f"expected {per_sweep} due, got {len(doomed)}")
            core.open_failed(probe)
            expired += len(doomed)
            for gone in doomed:
                add_idle(core, FakeConnection(ids[0], gone.conn.route, now), now)
                ids[0] += 1
        return elapsed, expired

    return expiries, lambda: _check_idle(core, n)


def setup_evict(routes: Sequence[Route], s: Settings) -> tuple[Batch, Callable[[], None]]:
    """(d) At max_connections = N, all idle: a new origin's cycle (evict the
    longest idle connection, reserve, open, check in)."""
    n = len(routes)
    pool = [*routes, Route(Origin("http", "new.test", 80))]
    core = new_core(rules_with(LONG), max_connections=n)
    tick = 1e-6  # distinct idle times; a whole run stays under one sweep interval
    for i, route in enumerate(routes):
        add_idle(core, FakeConnection(i, route, T0 + i * tick), T0 + i * tick)
    clock = Clock(T0 + n * tick)
    ops = max(5, min(2000, s.evict_work // n))
    step = [0]

    def evictions() -> tuple[int, int]:
        checkout, opened, checkin = core.checkout, core.opened, core.checkin
        first = step[0]
        # The route that comes in at step k is the one evicted at step k - 1.
        plan = [pool[(n + k) % (n + 1)] for k in range(first, first + ops)]
        conns = [
            FakeConnection(n + k, route, clock.now) for k, route in enumerate(plan, start=first)
        ]
        now = clock.now
        doomed: list = []
        reserved = False
        start = time.perf_counter_ns()
        for conn in conns:
            now += tick
            route = conn.route
            _, doomed, _ = checkout(route, now, fresh=False, retryable=True)
            _, _, reserved = checkout(route, now, fresh=False, retryable=True)
            opened(route)
            checkin(conn, now)
        elapsed = time.perf_counter_ns() - start
        if len(doomed) != 1 or doomed[0].reason != "pool_full" or not reserved:
            raise RuntimeError("the eviction measure did not evict")
        expected = pool[(first + ops - 1) % (n + 1)]
        if doomed[0].conn.route != expected:
            raise RuntimeError("the eviction did not take the longest idle connection")
        clock.now = now
        step[0] += ops
        return elapsed, ops

    return evictions, lambda: _check_idle(core, n)


def _must(conn: FakeConnection | None) -> FakeConnection:
    if conn is None:
        raise RuntimeError("the hot origin had no idle connection to take")
    return conn


def _check_idle(core: Core, expected: int) -> None:
    stats = core.stats()
    if stats.idle != expected or stats.active:
        raise RuntimeError(f"{stats.idle} idle, {stats.active} active; wanted {expected} idle")


def measure_memory(n: int) -> dict[str, float]:
    """Bytes per origin and per idle connection, by tracemalloc."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        routes = make_routes(n, prefix="m")
        after_routes = tracemalloc.get_traced_memory()[0]
        first = [FakeConnection(i, route, T0) for i, route in enumerate(routes)]
        after_first_conns = tracemalloc.get_traced_memory()[0]
        core = new_core(rules_with(30.0))
        for conn in first:
            add_idle(core, conn, T0)
        after_first = tracemalloc.get_traced_memory()[0]
        second = [FakeConnection(n + i, route, T0) for i, route in enumerate(routes)]
        after_second_conns = tracemalloc.get_traced_memory()[0]
        for conn in second:
            add_idle(core, conn, T0)
        after_second = tracemalloc.get_traced_memory()[0]
        _check_idle(core, 2 * n)
        # Every connection expires; the sweep closes them all.
        del first, second
        later = T0 + 31.0
        _, doomed, reserved = core.checkout(routes[0], later, fresh=True, retryable=True)
        if len(doomed) != 2 * n or not reserved:
            raise RuntimeError("the memory measure's sweep did not close everything")
        core.open_failed(routes[0])
        del doomed
        gc.collect()
        _check_idle(core, 0)
        after_closed = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    per_conn = (after_second - after_second_conns) / n
    return {
        "route": (after_routes - base) / n,
        "conn_and_life": (after_first_conns - after_routes) / n,
        "per_conn": per_conn,
        "per_origin": (after_first - after_first_conns) / n - per_conn,
        "kept": (after_closed - after_routes) / n,
    }


def run_core(s: Settings, rng: random.Random) -> list[str]:
    lines = ["### The core alone (no sockets)", ""]
    columns = ("hot", "sweep", "expire 1", "expire slice", "evict")
    batches: dict[tuple[int, str], Batch] = {}
    checks = []
    for n in s.origins:
        progress(f"core: setting up {n:,} origins")
        routes = make_routes(n)
        hot = Route(Origin("http", "hot.test", 80))
        batches[n, "hot"], batches[n, "sweep"], check = setup_hot_and_sweep(routes, hot, s)
        checks.append(check)
        batches[n, "expire 1"], check = setup_expiry(routes, 1, s.expiry_steps)
        checks.append(check)
        if n >= SLICE:
            batches[n, "expire slice"], check = setup_expiry(routes, SLICE, s.slice_steps)
            checks.append(check)
        batches[n, "evict"], check = setup_evict(routes, s)
        checks.append(check)
    progress(f"core: {s.repeats} rounds of {len(batches)} measures")
    medians = interleaved(batches, s.repeats, rng)
    for check in checks:
        check()
    del batches, checks
    gc.collect()
    results = {n: [medians.get((n, c), float("nan")) for c in columns] for n in s.origins}
    rows = [[f"{n:,}", *(_us(v) for v in values)] for n, values in results.items()]
    smallest, largest = min(results), max(results)
    if largest != smallest:
        ratios = []
        for i, value in enumerate(results[largest]):
            low = results[smallest][i]
            if low != low:  # no such measure at the smallest N: take the first there is
                low = next(v[i] for v in results.values() if v[i] == v[i])
            ratios.append(f"{value / low:.2f}x")
        rows.append([f"{largest:,} vs smallest", *ratios])
    lines += table(
        [
            "origins idle (N)",
            "(a) hot take+checkin",
            "(b) checkout, sweep due",
            "(c) sweep expiring 1",
            f"(c) per expired, {SLICE}/sweep",
            "(d) new origin, evicts",
        ],
        rows,
    )
    lines += [
        "",
        "Microseconds per operation, the median of repeats run interleaved across every N.",
        "(a) and (b) cycle the hot origin (an extra one); (c) is the whole checkout that",
        f"sweeps, divided by the connections it expired (1, or {SLICE} for N >= {SLICE});",
        "(d) is a new origin's cycle at max_connections = N: evict, reserve, opened, checkin.",
        "",
    ]
    progress("core: memory")
    mem = {n: measure_memory(n) for n in s.memory_origins}
    sample = FakeConnection(0, Route(Origin("http", "x.test", 80)), T0)
    lines += table(
        ["bytes (tracemalloc)", *(f"N = {n:,}" for n in mem)],
        [
            ["core, per idle connection", *(f"{m['per_conn']:.0f}" for m in mem.values())],
            [
                "core, per origin with idle connections",
                *(f"{m['per_origin']:.0f}" for m in mem.values()),
            ],
            [
                "core, kept per origin after its connections closed",
                *(f"{m['kept']:.0f}" for m in mem.values()),
            ],
            [
                "stand-in connection + its Lifetime (not the core's)",
                *(f"{m['conn_and_life']:.0f}" for m in mem.values()),
            ],
            ["route key, made by the caller", *(f"{m['route']:.0f}" for m in mem.values())],
        ],
    )
    lines += [
        "",
        f"sys.getsizeof: the stand-in connection {sys.getsizeof(sample)} B, a real Lifetime"
        f" {sys.getsizeof(sample.life)} B (each distinct float it holds is 24 B more).",
        "Per idle connection: N origins with a second idle connection each, divided by N;",
        "per origin: the first connection's share less that. The core's share includes the",
        "float the Lifetime gets for expires_at when it goes idle.",
        "",
    ]
    return lines


# -- part 2: through real sockets ----------------------------------------------


def serve_many(count: int, report: Connection, parent: int) -> None:
    """Listen on ``count`` ports of 127.0.0.1, send their numbers on
    ``report``, and answer every request head on every connection with
    RESPONSE, keeping connections open. Stops when the parent is gone or
    after SERVER_LIFETIME."""
    listeners = [socket.create_server((HOST, 0), backlog=128) for _ in range(count)]
    report.send([listener.getsockname()[1] for listener in listeners])
    report.close()
    sel = selectors.DefaultSelector()
    for listener in listeners:
        sel.register(listener, selectors.EVENT_READ, True)
    pending: dict[socket.socket, bytes] = {}
    deadline = time.monotonic() + SERVER_LIFETIME
    while os.getppid() == parent and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if key.data:
                conn, _ = sock.accept()
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(conn, selectors.EVENT_READ, False)
                pending[conn] = b""
                continue
            try:
                data = sock.recv(65536)
            except ConnectionError:
                data = b""
            if not data:
                sel.unregister(sock)
                sock.close()
                del pending[sock]
                continue
            buf = pending[sock] + data
            count_heads = buf.count(b"\r\n\r\n")
            pending[sock] = buf[buf.rfind(b"\r\n\r\n") + 4 :] if count_heads else buf
            if count_heads:
                sock.sendall(RESPONSE * count_heads)


def raise_nofile(needed: int) -> tuple[int, int, int]:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit (children
    inherit it): (before, now, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard


def raw_connect(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=SOCKET_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if sys.platform == "linux":
        # Blocking, with the kernel's timeout (as rawkeep does): no poll per call.
        sock.settimeout(None)
        timeval = struct.pack("@ll", int(SOCKET_TIMEOUT), 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    return sock


def raw_request(port: int) -> bytes:
    return f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: */*\r\n\r\n".encode()


def raw_gets(sock: socket.socket, request: bytes, n: int) -> None:
    """The floor: send pre-built bytes, receive the fixed response's length."""
    expected = len(RESPONSE)
    for _ in range(n):
        sock.sendall(request)
        got = len(sock.recv(65536))
        while got < expected:  # each pass takes at least one byte, or raises
            more = sock.recv(65536)
            if not more:
                raise RuntimeError("the server closed the hot connection")
            got += len(more)


def rawkeep_gets(client: rawkeep.Client, url: str, n: int) -> None:
    get = client.get
    for _ in range(n):
        if get(url).content != BODY:
            raise RuntimeError("unexpected body")


def traced_per_item(make: Callable[[int], None], count: int) -> float:
    """Python heap bytes that ``make(i)`` for i in range(count) kept, per
    item (tracemalloc)."""
    if count == 0:
        return float("nan")
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(count):
            make(i)
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) / count
    finally:
        tracemalloc.stop()


@dataclass
class Contender:
    """One client at one K: how to run n GETs to the hot origin, and its
    timings round by round (microseconds per request)."""

    k: int
    name: str
    run: Callable[[int], None]
    heap_per_origin: float
    times: list[float] = field(default_factory=list)


def setup_level(
    k: int,
    hot: int,
    others: Sequence[int],
    keep: list[socket.socket],
    clients: list[rawkeep.Client],
) -> tuple[Contender, Contender]:
    """A rawkeep client and a raw-socket client, each with a connection to
    the hot origin and one idle connection to each of ``k`` other origins.
    The requests that make them pass ``headers={}``, so that the client's
    cache of prepared requests stays out of the heap count."""
    client = rawkeep.Client(max_connections=None, max_connections_per_host=2, idle_timeout=3600.0)
    clients.append(client)
    hot_url = f"http://{HOST}:{hot}/"
    rawkeep_gets(client, hot_url, 1)

    def idle_rawkeep(i: int) -> None:
        if client.get(f"http://{HOST}:{others[i]}/", headers={}).content != BODY:
            raise RuntimeError("unexpected body")

    def idle_raw(i: int) -> None:
        sock = raw_connect(others[i])
        keep.append(sock)
        raw_gets(sock, raw_request(others[i]), 1)

    heap_rawkeep = traced_per_item(idle_rawkeep, k)
    hot_sock = raw_connect(hot)
    keep.append(hot_sock)
    heap_raw = traced_per_item(idle_raw, k)
    request = raw_request(hot)
    return (
        Contender(k, "rawkeep", lambda n: rawkeep_gets(client, hot_url, n), heap_rawkeep),
        Contender(k, "raw", lambda n: raw_gets(hot_sock, request, n), heap_raw),
    )


def run_sockets(s: Settings, seed: int) -> list[str]:
    levels = sorted(set(s.others))
    # This process: both clients' sockets at every K; the server: those,
    # and a listener per origin.
    needed = 3 * sum(k + 1 for k in levels) + 256
    before, soft, hard = raise_nofile(needed)
    while levels and 3 * sum(k + 1 for k in levels) + 256 > soft:
        levels.pop()
    lines = [
        "### Through real sockets: a hot origin with K other origins idle",
        "",
        f"RLIMIT_NOFILE: this benchmark set its soft limit to the hard limit ({hard}; it was"
        f" {before}, now {soft}); the library never changes it.",
    ]
    if len(levels) < len(set(s.others)):
        skipped = ", ".join(str(k) for k in sorted(set(s.others) - set(levels)))
        lines.append(f"Skipped K = {skipped}: {soft} file descriptors are too few.")
    lines.append("")
    if not levels:
        return lines
    receive, send = multiprocessing.Pipe(duplex=False)
    server = multiprocessing.Process(
        target=serve_many, args=(max(levels) + 1, send, os.getpid()), daemon=True
    )
    server.start()
    send.close()
    rng = random.Random(seed)
    keep: list[socket.socket] = []
    clients: list[rawkeep.Client] = []
    contenders: list[Contender] = []
    try:
        if not receive.poll(60):
            raise RuntimeError("the server did not start within 60 s")
        ports: list[int] = receive.recv()
        hot, others = ports[0], ports[1:]
        for k in levels:
            progress(f"sockets: a rawkeep client and a raw one with {k:,} other origins idle")
            contenders += setup_level(k, hot, others, keep, clients)
        opened = [c.pool_stats().opened for c in clients]
        for contender in contenders:
            contender.run(max(1, s.requests // 5))  # warm-up
        for round_ in range(s.rounds):
            progress(f"sockets: round {round_ + 1} of {s.rounds}")
            rng.shuffle(contenders)
            for contender in contenders:
                start = time.perf_counter_ns()
                contender.run(s.requests)
                contender.times.append((time.perf_counter_ns() - start) / s.requests / 1000)
        for k, client, count in zip(levels, clients, opened, strict=True):
            stats = client.pool_stats()
            if stats.idle != k + 1 or stats.opened != count:
                raise RuntimeError(
                    f"pool at K={k}: {stats.idle} idle, {stats.opened - count} opened while timing"
                )
    finally:
        for client in clients:
            client.close()
        for sock in keep:
            sock.close()
        receive.close()
        server.terminate()
        server.join(10)
    by = {(c.k, c.name): c for c in contenders}
    med = statistics.median
    rows = []
    for k in levels:
        mine, floor = by[k, "rawkeep"], by[k, "raw"]
        first, first_raw = by[levels[0], "rawkeep"], by[levels[0], "raw"]
        rows.append(
            [
                f"{k:,}",
                _spread(mine.times),
                _spread(floor.times),
                f"{med(a / b for a, b in zip(mine.times, floor.times, strict=True)):.2f}x",
                f"{med(a / b for a, b in zip(mine.times, first.times, strict=True)):.2f}x",
                f"{med(a / b for a, b in zip(floor.times, first_raw.times, strict=True)):.2f}x",
                "-" if k == 0 else f"{mine.heap_per_origin:,.0f} / {floor.heap_per_origin:,.0f}",
            ]
        )
    lines += table(
        [
            "other origins idle (K)",
            "rawkeep us/req (min-max)",
            "raw socket us/req (min-max)",
            "rawkeep / raw",
            f"rawkeep vs K={levels[0]}",
            f"raw vs K={levels[0]}",
            "heap B per idle origin, rawkeep / raw",
        ],
        rows,
    )
    lines += [
        "",
        "Each K has its own rawkeep.Client(max_connections=None, max_connections_per_host=2,"
        " idle_timeout=3600)",
        "and its own raw client, each with one idle connection to each of the K other origins;",
        "all of them live side by side and run interleaved, so a busy moment of the machine",
        "hits every row alike: what differs between rows is the number of idle origins.",
        f"{s.requests:,} sequential GETs to the hot origin per client per round,"
        f" {s.rounds} rounds,",
        "a fresh random order each round; medians and min-max over rounds; ratios are",
        "computed per round, then medianed. pool_stats checked afterwards: K + 1 idle, none",
        "opened while timing. Heap: tracemalloc while the K origins were made idle (Python",
        "objects only, not the kernel's socket buffers).",
        "",
    ]
    return lines


# -- output ---------------------------------------------------------------------


def _us(value: float) -> str:
    if value != value:
        return "-"
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def _spread(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table, columns padded to line up."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = "| " + " | ".join("-" * (w - 1) + (":" if i else "-") for i, w in enumerate(widths))
    return [line(headers), rule + " |", *(line(r) for r in rows)]


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load() -> str:
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def header(s: Settings, quick: bool, parts: Sequence[str]) -> list[str]:
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return [
        f"## Pool scale ({'quick' if quick else 'default'} run, {when})",
        "",
        f"- Python {platform.python_version()} ({platform.python_implementation()}),"
        f" {platform.system()} {platform.release()} {platform.machine()},"
        f" {os.cpu_count()} cores; load average at start {load()}",
        f"- rawkeep {rawkeep.__version__} from {HERE.parent}",
        f"- parts: {', '.join(parts)}; core: median of {s.repeats} interleaved repeats"
        " after a warm-up, time.perf_counter_ns around each batch, the garbage collector"
        " off while timing; fake clock passed as now",
        "- sockets: one server process on 127.0.0.1 (selector loop, fixed"
        f" {len(RESPONSE)}-byte response, keep-alive), one port per origin",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--parts", default="core,sockets", help="core, sockets, or both")
    parser.add_argument("--origins", help="N for the core, e.g. 1,100,100000")
    parser.add_argument("--others", help="K for the socket part, e.g. 0,1000,4000")
    parser.add_argument("--requests", type=int, help="GETs per client per round")
    parser.add_argument("--rounds", type=int, help="rounds of the socket part")
    parser.add_argument("--repeats", type=int, help="repeats of each core measure")
    parser.add_argument("--seed", type=int, default=12, help="seeds the random orders")
    args = parser.parse_args()
    s = QUICK if args.quick else FULL
    overrides: dict[str, object] = {}
    for name in ("origins", "others"):
        text = getattr(args, name)
        if text:
            overrides[name] = tuple(int(x.replace("_", "")) for x in text.split(","))
    for name in ("requests", "rounds", "repeats"):
        if getattr(args, name) is not None:
            overrides[name] = max(1, getattr(args, name))
    s = Settings(**{**s.__dict__, **overrides})  # type: ignore[arg-type]
    if min(s.origins) < 1:
        parser.error("--origins: each N must be at least 1")
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - {"core", "sockets"}
    if unknown or not parts:
        parser.error(f"--parts: core and/or sockets, not {', '.join(sorted(unknown))}")

    started = time.monotonic()
    lines = header(s, args.quick, parts)
    if "core" in parts:
        lines += run_core(s, random.Random(args.seed))
    if "sockets" in parts:
        lines += run_sockets(s, args.seed)
    lines.append(f"Took {time.monotonic() - started:.0f} s; load average at the end {load()}.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
