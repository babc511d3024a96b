"""rawkeep against the floors of Python HTTP and its peers, side by side, in one run.

    python benchmarks/run.py                 # every suite (about 5-8 minutes)
    python benchmarks/run.py --quick         # every suite, shorter (about 1-2 minutes)
    python benchmarks/run.py --suites small,download --clients raw,h11,rawkeep --rounds 9

Starts a private nginx on 127.0.0.1 (see ``_server.py``), runs the suites,
prints Markdown tables (progress goes to stderr), and stops nginx at the end,
on Ctrl-C and on errors. Needs nginx (Debian's ``nginx`` package) and the
peers: ``pip install -e '.[bench]'``; a missing peer is skipped and named.

Method: the machine is shared and noisy. In each round every client runs
once, in a fresh random order; a suite runs several rounds. Tables show
each client's median over the rounds and the min-max, and its ratios to the
raw socket floor and to rawkeep, each computed within a round and then
medianed, so a slow moment of the machine hits both sides of a ratio. The
connections column is what nginx's ``stub_status`` counted (its ``accepts``
before and after each client's run, warm-up included), so a client that
silently reconnects shows up. See docs/benchmarks.md for what each number
means.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import random
import shlex
import signal
import ssl
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from _clients import ADAPTERS, Adapter, Target
from _memory import MEMORY_CLIENTS
from _server import BIG_SIZE, HOST, Nginx, make_payload

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

HERE: Final = Path(__file__).resolve().parent
#: Where the measured rawkeep package lives: this working tree, unless
#: ``--rawkeep`` names another directory or a git revision.
RAWKEEP_ROOT = HERE.parent
#: What to call it when it is not a git working tree (a revision's export).
RAWKEEP_LABEL: str | None = None

SUITES: Final = ("small", "download", "upload", "threads", "tls", "import", "memory")
#: Peers with a pool of their own (the threads target compares against these).
POOLED_PEERS: Final = ("urllib3", "requests", "httpx", "httpcore", "aiohttp")
#: Peers written in Python only (aiohttp parses HTTP in C, pycurl is libcurl).
PURE_PYTHON_PEERS: Final = ("http.client", "urllib3", "requests", "httpx", "httpcore")
PEERS: Final = (*PURE_PYTHON_PEERS, "aiohttp", "pycurl")


@dataclass(frozen=True)
class Settings:
    """How much work each suite does."""

    rounds: int = 9
    small_requests: int = 2000
    big_reps: int = 5
    big_rounds: int = 7
    threads: int = 8
    per_thread: int = 250
    threads_rounds: int = 7
    tls_requests: int = 1000
    tls_new: int = 100
    tls_rounds: int = 7
    import_runs: int = 20
    memory_connections: int = 200
    memory_rounds: int = 3


FULL: Final = Settings()
QUICK: Final = Settings(
    rounds=3,
    small_requests=500,
    big_reps=2,
    big_rounds=3,
    per_thread=100,
    threads_rounds=3,
    tls_requests=300,
    tls_new=30,
    tls_rounds=3,
    import_runs=6,
    memory_connections=200,
    memory_rounds=1,
)


@dataclass
class Series:
    """One client's results for one metric, round by round."""

    values: list[float] = field(default_factory=list)
    to_raw: list[float] = field(default_factory=list)
    to_rawkeep: list[float] = field(default_factory=list)
    conns: list[int] = field(default_factory=list)
    error: str | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.values)


@dataclass
class Metric:
    """A measured quantity: one Series per client."""

    key: str
    title: str
    unit: str
    higher_is_better: bool
    note: str = ""
    series: dict[str, Series] = field(default_factory=dict)
    seconds: float = 0.0


# -- running rounds ----------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Step:
    """One measurement per client per round; ``cpu`` also records the
    client's CPU time from ``Adapter.last_cpu`` (times ``cpu_scale``)."""

    metric: Metric
    measure: Callable[[Adapter], float]
    cpu: Metric | None = None
    cpu_scale: float = 1.0


def run_rounds(
    server: Nginx,
    adapters: Sequence[Adapter],
    steps: Sequence[Step],
    rounds: int,
    label: str,
) -> None:
    """Run every step for every client, ``rounds`` times in random orders.

    A client whose run raises is reported with the error and skipped for
    the rest of the suite; the others go on.
    """
    started = time.monotonic()
    metrics = [step.metric for step in steps] + [step.cpu for step in steps if step.cpu]
    for metric in metrics:
        metric.series = {adapter.name: Series() for adapter in adapters}
    for number in range(1, rounds + 1):
        order = list(adapters)
        random.shuffle(order)
        log(f"  {label} round {number}/{rounds}: {' '.join(a.name for a in order)}")
        for adapter in order:
            for step in steps:
                series = step.metric.series[adapter.name]
                if series.error is not None:
                    continue
                gc.collect()
                before = server.accepts()
                try:
                    value = step.measure(adapter)
                except Exception as exc:
                    series.error = f"{type(exc).__name__}: {exc}"[:200]
                    log(f"    {adapter.name} failed: {series.error}")
                    continue
                after = server.accepts()
                both = [series]
                series.values.append(value)
                if step.cpu is not None:
                    both.append(step.cpu.series[adapter.name])
                    both[1].values.append(adapter.last_cpu * step.cpu_scale)
                if before is not None and after is not None:
                    for each in both:
                        each.conns.append(after - before)
        for metric in metrics:
            _add_ratios(metric, number)
    for metric in metrics:
        metric.seconds = time.monotonic() - started


def _add_ratios(metric: Metric, number: int) -> None:
    """Ratios within round ``number`` (1-based) to raw and to rawkeep."""

    def this_round(name: str) -> float | None:
        series = metric.series.get(name)
        if series is None or series.error is not None or len(series.values) < number:
            return None
        return series.values[number - 1]

    raw, ours = this_round("raw"), this_round("rawkeep")
    for name, series in metric.series.items():
        value = this_round(name)
        if value is None:
            continue
        if raw:
            series.to_raw.append(value / raw)
        if ours:
            series.to_rawkeep.append(value / ours)


# -- the suites --------------------------------------------------------------------------


def suite_small(server: Nginx, adapters: Sequence[Adapter], s: Settings) -> list[Metric]:
    metric = Metric(
        "small",
        f"Sequential small GETs over one kept-alive connection ({s.small_requests} per run)",
        "us/req",
        higher_is_better=False,
        note="13-byte body; expected connections: 1 per run (warm-up included).",
    )
    cpu = _cpu_metric("small_cpu", "small GET")
    n = s.small_requests
    run_rounds(
        server,
        adapters,
        [Step(metric, lambda a: a.time_gets("/small", n) / n * 1e6, cpu, 1e6 / n)],
        s.rounds,
        "small",
    )
    return [metric, cpu]


def _cpu_metric(key: str, what: str) -> Metric:
    return Metric(
        key,
        f"Client CPU time per {what} (same runs as above)",
        "CPU us/req",
        higher_is_better=False,
        note="The benchmark process's CPU time (user + system) over the timed loop:"
        " the client's own cost, without the server's time or the wait for it, so"
        " steadier than wall time on a busy machine. Not a target, a diagnosis.",
    )


def suite_download(server: Nginx, adapters: Sequence[Adapter], s: Settings) -> list[Metric]:
    metric = Metric(
        "download",
        f"64 MiB download, streamed to a discarding sink ({s.big_reps} per run)",
        "MB/s",
        higher_is_better=True,
        note="MB = 10^6 bytes; expected connections: 1 per run.",
    )
    reps = s.big_reps
    run_rounds(
        server,
        adapters,
        [Step(metric, lambda a: reps * BIG_SIZE / a.time_downloads("/big.bin", reps) / 1e6)],
        s.big_rounds,
        "download",
    )
    return [metric]


def suite_upload(
    server: Nginx, adapters: Sequence[Adapter], s: Settings, payload: bytes
) -> list[Metric]:
    metric = Metric(
        "upload",
        f"64 MiB upload from bytes in memory, answered 204 ({s.big_reps} per run)",
        "MB/s",
        higher_is_better=True,
        note="nginx reads the whole body (to a temp file) before answering;"
        " expected connections: 1 per run.",
    )
    reps = s.big_reps
    run_rounds(
        server,
        adapters,
        [Step(metric, lambda a: reps * BIG_SIZE / a.time_uploads("/upload", payload, reps) / 1e6)],
        s.big_rounds,
        "upload",
    )
    return [metric]


def suite_threads(server: Nginx, adapters: Sequence[Adapter], s: Settings) -> list[Metric]:
    total = s.threads * s.per_thread
    notes = sorted({f"{a.name}: {a.threads_note}" for a in adapters if a.threads_note})
    metric = Metric(
        "threads",
        f"{s.threads} threads sharing one client, {s.per_thread} small GETs each",
        "req/s",
        higher_is_better=True,
        note=f"Expected connections: at most {s.threads} (rawkeep's limit is 10 per host). "
        + "; ".join(notes),
    )
    run_rounds(
        server,
        adapters,
        [Step(metric, lambda a: total / a.time_threads("/small", s.threads, s.per_thread))],
        s.threads_rounds,
        "threads",
    )
    return [metric]


def suite_tls(server: Nginx, adapters: Sequence[Adapter], s: Settings) -> list[Metric]:
    reuse = Metric(
        "tls",
        f"HTTPS small GETs over one TLS connection ({s.tls_requests} per run)",
        "us/req",
        higher_is_better=False,
        note="Expected connections: 1 per run.",
    )
    new = Metric(
        "tls_new",
        f"HTTPS small GETs with `Connection: close`: a new TLS connection each"
        f" ({s.tls_new} per run)",
        "us/req",
        higher_is_better=False,
        note=f"Expected connections: {s.tls_new + 1} per run (one per request, warm-up"
        " included). Full handshakes: no client resumes TLS sessions by default.",
    )
    cpu = _cpu_metric("tls_cpu", "HTTPS GET over one TLS connection")
    n, fresh = s.tls_requests, s.tls_new
    run_rounds(
        server,
        adapters,
        [
            Step(reuse, lambda a: a.time_gets("/small", n) / n * 1e6, cpu, 1e6 / n),
            Step(new, lambda a: a.time_gets("/small", fresh, close=True) / fresh * 1e6),
        ],
        s.tls_rounds,
        "tls",
    )
    return [reuse, new, cpu]


@dataclass
class ImportResult:
    name: str
    module: str
    over_bare: list[float] = field(default_factory=list)
    in_process: list[float] = field(default_factory=list)
    loads_ssl: bool = False
    modules: int = 0
    error: str | None = None


_IN_PROCESS: Final = (
    "import time; t = time.perf_counter(); import {module}; t = time.perf_counter() - t; "
    "import sys; print(t, int('ssl' in sys.modules), len(sys.modules))"
)


def suite_import(adapters: Sequence[Adapter], runs: int) -> list[ImportResult]:
    """``python -c "import X"`` in fresh processes, interleaved, minus a bare
    interpreter measured in the same round; plus the import's own time
    measured inside the process (steadier: no process start-up in it)."""
    results = [ImportResult(a.name, a.module) for a in adapters]
    # Bytecode caches are written (PYTHONDONTWRITEBYTECODE, set on some
    # machines, would make every run compile rawkeep from source) and used.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def python(code: str) -> bytes:
        # From RAWKEEP_ROOT, so that "import rawkeep" is the measured one.
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=RAWKEEP_ROOT,
            env=env,
            capture_output=True,
            check=True,
        )
        return done.stdout

    def wall(code: str) -> float:
        start = time.perf_counter()
        python(code)
        return time.perf_counter() - start

    bare_modules = int(python("import sys; print(len(sys.modules))"))
    for result in results:  # warm the file system cache; check each imports
        try:
            out = python(_IN_PROCESS.format(module=result.module))
        except subprocess.CalledProcessError as exc:
            result.error = exc.stderr.decode().strip().splitlines()[-1][:200]
            continue
        _, ssl_flag, count = out.split()
        result.loads_ssl = ssl_flag == b"1"
        result.modules = int(count) - bare_modules
    for number in range(1, runs + 1):
        log(f"  import round {number}/{runs}")
        order = [r for r in results if r.error is None]
        random.shuffle(order)
        bare_time = wall("pass")
        for result in order:
            result.over_bare.append((wall(f"import {result.module}") - bare_time) * 1e3)
            out = python(_IN_PROCESS.format(module=result.module))
            result.in_process.append(float(out.split()[0]) * 1e3)
    return results


@dataclass
class MemoryResult:
    name: str
    traced: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    idle: int = 0
    conns: list[int] = field(default_factory=list)
    error: str | None = None


def suite_memory(
    server: Nginx, names: Sequence[str], count: int, rounds: int
) -> list[MemoryResult]:
    """Each client in a fresh process per measurement (see ``_memory.py``)."""
    results = {name: MemoryResult(name) for name in names}
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(RAWKEEP_ROOT), os.environ.get("PYTHONPATH")])
        ),
    }
    url = server.url("/small")
    for number in range(1, rounds + 1):
        order = list(names)
        random.shuffle(order)
        log(f"  memory round {number}/{rounds}: {' '.join(order)}")
        for name in order:
            result = results[name]
            if result.error is not None:
                continue
            for mode in ("tracemalloc", "rss"):
                before = server.accepts()
                out = subprocess.run(
                    [sys.executable, str(HERE / "_memory.py"), name, url, str(count), mode],
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd=RAWKEEP_ROOT,
                    check=False,
                )
                after = server.accepts()
                if out.returncode != 0:
                    result.error = (out.stderr.strip().splitlines() or ["failed"])[-1][:200]
                    break
                data = json.loads(out.stdout)
                (result.traced if mode == "tracemalloc" else result.rss).append(
                    data["per_connection"]
                )
                result.idle = int(data["idle"])
                if before is not None and after is not None:
                    result.conns.append(after - before)
    return list(results.values())


# -- tables ------------------------------------------------------------------------------


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)
    ]
    numeric = [
        all(_looks_numeric(row[i]) for row in rows) if rows else False for i in range(len(headers))
    ]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.rjust(w) if numeric[i] else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            ("-" * (w + 1) + ":") if numeric[i] else ("-" * (w + 2)) for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def _looks_numeric(cell: str) -> bool:
    text = cell.replace("x", "").replace("-", "").replace(".", "").replace("+", "").strip()
    return text.isdigit() or cell.strip() in ("", "n/a")


def _number(value: float, unit: str) -> str:
    if unit in ("MB/s", "req/s"):
        return f"{value:.0f}"
    return f"{value:.1f}"


def _conns(values: list[int]) -> str:
    if not values:
        return "n/a"
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def metric_table(metric: Metric) -> str:
    better = "higher is better" if metric.higher_is_better else "lower is better"
    headers = [
        "client",
        f"median {metric.unit}",
        "min-max",
        "x raw",
        "x rawkeep",
        "conns/run",
    ]
    rows = []
    for name, series in metric.series.items():
        if series.error is not None and not series.values:
            rows.append([name, "error", series.error, "", "", ""])
            continue
        low, high = min(series.values), max(series.values)
        spread = f"{_number(low, metric.unit)}-{_number(high, metric.unit)}"
        rows.append(
            [
                name,
                _number(series.median, metric.unit),
                spread,
                f"{statistics.median(series.to_raw):.2f}x" if series.to_raw else "n/a",
                f"{statistics.median(series.to_rawkeep):.2f}x" if series.to_rawkeep else "n/a",
                _conns(series.conns),
            ]
        )
    rounds = max((len(s.values) for s in metric.series.values()), default=0)
    head = (
        f"### {metric.title}\n\n{metric.unit}, {better}; {rounds} rounds, {metric.seconds:.0f} s."
    )
    notes = f"\n\n{metric.note}" if metric.note else ""
    return f"{head}{notes}\n\n{markdown_table(headers, rows)}\n"


def tls_cost_table(reuse: Metric, new: Metric) -> str:
    rows = []
    for name, series in reuse.series.items():
        fresh = new.series.get(name)
        if not series.values or fresh is None or not fresh.values:
            continue
        pairs = list(zip(fresh.values, series.values, strict=False))
        extra = statistics.median(f - r for f, r in pairs)
        rows.append(
            [
                name,
                f"{series.median:.1f}",
                f"{fresh.median:.1f}",
                f"{extra:.0f}",
                f"{statistics.median(f / r for f, r in pairs):.1f}x",
            ]
        )
    headers = ["client", "reused us/req", "new conn us/req", "new - reused us", "new / reused"]
    return (
        "### Cost of a new TLS connection versus reuse\n\n"
        "Per-round differences of the two tables above, medianed.\n\n"
        f"{markdown_table(headers, rows)}\n"
    )


def import_table(results: Sequence[ImportResult], runs: int) -> str:
    h11 = next((r for r in results if r.name == "h11" and r.over_bare), None)
    rows = []
    for r in results:
        if r.error is not None:
            rows.append([r.module, "error", r.error, "", "", "", ""])
            continue
        versus = "n/a"
        if h11 is not None:
            pairs = zip(r.over_bare, h11.over_bare, strict=True)
            versus = f"{statistics.median(a - b for a, b in pairs):+.1f}"
        rows.append(
            [
                r.module,
                f"{statistics.median(r.over_bare):.1f}",
                f"{min(r.over_bare):.1f}-{max(r.over_bare):.1f}",
                f"{statistics.median(r.in_process):.1f}",
                versus,
                "yes" if r.loads_ssl else "no",
                str(r.modules),
            ]
        )
    headers = [
        "import",
        "median ms over bare",
        "min-max",
        "in-process ms",
        "vs h11 ms",
        "loads ssl",
        "modules added",
    ]
    return (
        "### Import time\n\n"
        f'`python -c "import X"` wall time minus a bare interpreter\'s in the same round,'
        f" {runs} rounds in fresh processes; in-process: the import statement alone, timed"
        " inside the process.\n\n"
        f"{markdown_table(headers, rows)}\n"
    )


def memory_table(results: Sequence[MemoryResult], count: int) -> str:
    rows = []
    for r in results:
        if r.error is not None and not r.traced:
            rows.append([r.name, "error", r.error, "", ""])
            continue
        rows.append(
            [
                r.name,
                f"{statistics.median(r.traced):.0f}",
                f"{statistics.median(r.rss):.0f}" if r.rss else "n/a",
                str(r.idle),
                _conns(r.conns),
            ]
        )
    headers = ["client", "traced bytes/conn", "RSS bytes/conn", "idle conns", "conns/run"]
    return (
        "### Memory per idle pooled connection\n\n"
        f"{count} connections held open at once, then all returned idle to the client's pool;"
        f" the growth over a baseline with one idle connection, divided by {count - 1}."
        " Traced: Python allocations (tracemalloc). RSS: resident set growth, an upper bound"
        " (includes heap kept from the burst). Kernel socket buffers are in neither.\n\n"
        f"{markdown_table(headers, rows)}\n"
    )


# -- environment and targets -------------------------------------------------------------


def environment(server: Nginx | None, adapters: Sequence[Adapter], pin: str) -> str:
    lines = [
        f"- Python {platform.python_version()} ({platform.python_implementation()}),"
        f" {platform.system()} {platform.release()} {platform.machine()}",
        f"- {os.cpu_count()} cores"
        + (
            f" (this process may use {len(os.sched_getaffinity(0))})"
            if hasattr(os, "sched_getaffinity")
            else ""
        )
        + f"; CPU pinning: {pin}",
        f"- {ssl.OPENSSL_VERSION} (Python's ssl)",
        f"- load average at the start: {_load()} (other work on the machine skews results)",
    ]
    if server is not None:
        lines.append(
            f"- nginx {server.version} (1 worker; stub_status:"
            f" {'yes' if server.has_stub_status else 'no, connection counts unavailable'});"
            f" TLS certificate from {server.ca_tool or 'n/a'}"
        )
    versions = []
    for adapter in adapters:
        versions.append(f"{adapter.name} {_version(adapter)}")
    lines.append(f"- clients: {', '.join(versions)}")
    lines.append(f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    return "\n".join(lines)


def _load() -> str:
    if not hasattr(os, "getloadavg"):
        return "n/a"
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _version(adapter: Adapter) -> str:
    if adapter.name == "rawkeep":
        import rawkeep

        where = Path(rawkeep.__file__).parent.parent
        return f"{rawkeep.__version__} ({_git_commit()}, from {where})"
    if adapter.name == "raw":
        return "(socket)"
    if adapter.name == "http.client":
        return "(stdlib)"
    if adapter.distribution is None:
        return "?"
    try:
        version = metadata.version(adapter.distribution)
    except metadata.PackageNotFoundError:
        return "not installed"
    if adapter.name == "pycurl":
        import pycurl

        libcurl = str(pycurl.version).split()[1]
        return f"{version} ({libcurl})"
    return version


def _git_commit() -> str:
    if RAWKEEP_LABEL is not None:
        return RAWKEEP_LABEL
    try:
        commit = subprocess.run(
            ["git", "-C", str(RAWKEEP_ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(RAWKEEP_ROOT), "status", "--porcelain", "--", "rawkeep"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "commit unknown"
    return f"commit {commit}{' + uncommitted changes' if dirty else ''}"


def _ratio(metric: Metric | None, name: str, other: str) -> float | None:
    """Median over rounds of value(name) / value(other), paired by round."""
    if metric is None:
        return None
    a, b = metric.series.get(name), metric.series.get(other)
    if a is None or b is None or not a.values or not b.values:
        return None
    pairs = list(zip(a.values, b.values, strict=False))
    return statistics.median(x / y for x, y in pairs)


def targets(
    metrics: dict[str, Metric],
    imports: Sequence[ImportResult],
    memory: Sequence[MemoryResult],
) -> str:
    """Issue 6's targets, judged from this run's numbers."""
    rows: list[list[str]] = []

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "NOT met")

    small = metrics.get("small")
    r = _ratio(small, "rawkeep", "h11")
    cpu = _ratio(metrics.get("small_cpu"), "rawkeep", "h11")
    rows.append(
        [
            "small GET: rawkeep within 1.10x of the bare h11 loop",
            "n/a"
            if r is None
            else f"{r:.2f}x the h11 loop's time"
            + ("" if cpu is None else f" ({cpu:.2f}x its CPU time)"),
            verdict(None if r is None else r <= 1.10),
        ]
    )
    for peer, want in (("urllib3", 1.5), ("httpcore", 1.5), ("httpx", 2.5), ("requests", 4.0)):
        r = _ratio(small, peer, "rawkeep")
        rows.append(
            [
                f"small GET: >= {want}x faster than {peer}",
                "n/a" if r is None else f"{r:.2f}x",
                verdict(None if r is None else r >= want),
            ]
        )
    slower = [p for p in PURE_PYTHON_PEERS if (x := _ratio(small, p, "rawkeep")) and x < 1.0]
    known = [p for p in PURE_PYTHON_PEERS if _ratio(small, p, "rawkeep") is not None]
    rows.append(
        [
            "small GET: faster than every pure-Python peer",
            f"faster than {len(known) - len(slower)} of {len(known)}"
            + (f"; slower than {', '.join(slower)}" if slower else ""),
            verdict(None if not known else not slower),
        ]
    )
    r = _ratio(small, "pycurl", "rawkeep")
    rows.append(
        [
            "small GET (stretch): match pycurl",
            "n/a" if r is None else f"pycurl takes {r:.2f}x rawkeep's time",
            verdict(None if r is None else r >= 1.0),
        ]
    )
    for key, label in (("download", "download"), ("upload", "upload")):
        metric = metrics.get(key)
        r = _ratio(metric, "rawkeep", "raw")
        rows.append(
            [
                f"{label}: >= 0.95x the raw floor",
                "n/a" if r is None else f"{r:.2f}x",
                verdict(None if r is None else r >= 0.95),
            ]
        )
        ahead = [(p, _ratio(metric, "rawkeep", p)) for p in PEERS]
        known_ahead = [(p, x) for p, x in ahead if x is not None]
        behind = [p for p, x in known_ahead if x < 1.0]
        rows.append(
            [
                f"{label}: ahead of every peer",
                "n/a"
                if not known_ahead
                else (f"behind {', '.join(behind)}" if behind else "ahead of all"),
                verdict(None if not known_ahead else not behind),
            ]
        )
    threads = metrics.get("threads")
    best = None
    if threads is not None:
        pooled = [
            (threads.series[p].median, p)
            for p in POOLED_PEERS
            if p in threads.series and threads.series[p].values
        ]
        best = max(pooled) if pooled else None
    ours = threads.series.get("rawkeep") if threads is not None else None
    if threads is not None and best is not None and ours is not None and ours.values:
        rows.append(
            [
                "threads: rawkeep reaches the best pooled peer's req/s",
                f"{ours.median:.0f} vs {best[1]} {best[0]:.0f}",
                verdict(ours.median >= best[0]),
            ]
        )
        everyone = [
            (threads.series[p].median, p)
            for p in PEERS
            if p in threads.series and threads.series[p].values
        ]
        top = max(everyone)
        rows.append(
            [
                "threads: ... and every peer's, connection stacks included",
                f"{ours.median:.0f} vs {top[1]} {top[0]:.0f}",
                verdict(ours.median >= top[0]),
            ]
        )
        most = max(ours.conns) if ours.conns else None
        rows.append(
            [
                "threads: no more connections than the pool limit (10)",
                "n/a" if most is None else f"{most} opened at most",
                verdict(None if most is None else most <= 10),
            ]
        )
    else:
        rows.append(["threads", "n/a", "n/a"])
    by_name = {r.name: r for r in imports if r.over_bare}
    if "rawkeep" in by_name and "h11" in by_name:
        extra = statistics.median(
            a - b
            for a, b in zip(by_name["rawkeep"].over_bare, by_name["h11"].over_bare, strict=True)
        )
        extra_in = statistics.median(by_name["rawkeep"].in_process) - statistics.median(
            by_name["h11"].in_process
        )
        rows.append(
            [
                "import rawkeep: at most 10 ms more than import h11",
                f"{extra:+.1f} ms (in-process {extra_in:+.1f} ms);"
                f" loads ssl: {'yes' if by_name['rawkeep'].loads_ssl else 'no'}",
                verdict(extra <= 10.0),
            ]
        )
    else:
        rows.append(["import", "n/a", "n/a"])
    mem = {m.name: m for m in memory if m.traced}
    if "rawkeep" in mem:
        ours_bytes = statistics.median(mem["rawkeep"].traced)
        floor = statistics.median(mem["h11"].traced) if "h11" in mem else None
        detail = f"{ours_bytes / 1024:.1f} KiB per idle connection (traced)"
        if floor is not None:
            detail += f"; the h11 loop's socket + h11.Connection: {floor / 1024:.1f} KiB"
        rows.append(
            [
                "idle connection memory: reported; no buffers larger than needed while idle",
                detail,
                verdict(None if floor is None else ours_bytes <= floor + 16 * 1024),
            ]
        )
    return (
        "### Targets of issue 6, judged from this run\n\n"
        f"{markdown_table(['target', 'this run', 'verdict'], rows)}\n"
    )


# -- main --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    names = [a.name for a in ADAPTERS]
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="fewer rounds and requests")
    parser.add_argument(
        "--suites", default=",".join(SUITES), help=f"comma-separated, of: {','.join(SUITES)}"
    )
    parser.add_argument(
        "--clients", default=",".join(names), help=f"comma-separated, of: {','.join(names)}"
    )
    parser.add_argument("--rounds", type=int, help="rounds for every timed suite")
    parser.add_argument("--requests", type=int, help="small GETs per client per round")
    parser.add_argument("--threads", type=int, help="threads in the threads suite (default 8)")
    parser.add_argument(
        "--pin",
        choices=("none", "split", "same"),
        default="none",
        help="CPU placement: none (the OS decides), split (client on CPU 0, nginx on CPU 1),"
        " same (both on CPU 0: steadier, counts server and client CPU time together)",
    )
    parser.add_argument("--seed", type=int, help="seed for the random client orders")
    parser.add_argument("--markdown", type=Path, help="also write the report to this file")
    parser.add_argument("--json", type=Path, help="also write every measurement to this file")
    parser.add_argument(
        "--rawkeep",
        metavar="DIR|REV",
        help="measure the rawkeep package in DIR, or at git revision REV of this repository"
        " (exported to a temporary directory; e.g. HEAD, HEAD~1, main);"
        " default: this working tree, uncommitted changes included",
    )
    parser.add_argument(
        "--ca",
        choices=("auto", "trustme", "openssl"),
        default="auto",
        help="how the TLS test CA is made (auto: trustme if installed, else openssl)",
    )
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.suite_list = _choose(args.suites, SUITES, "suite")
    args.client_list = _choose(args.clients, names, "client")
    return args


def _choose(text: str, known: Sequence[str], what: str) -> list[str]:
    chosen = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise SystemExit(f"unknown {what}(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [k for k in known if k in chosen]


def settings_from(args: argparse.Namespace) -> Settings:
    s = QUICK if args.quick else FULL
    if args.rounds is not None:
        s = replace(
            s,
            rounds=args.rounds,
            big_rounds=args.rounds,
            threads_rounds=args.rounds,
            tls_rounds=args.rounds,
            import_runs=max(args.rounds, 3),
            memory_rounds=max(1, min(args.rounds, 3)),
        )
    if args.requests is not None:
        s = replace(s, small_requests=args.requests)
    if args.threads is not None:
        s = replace(s, threads=args.threads)
    return s


def _pin(mode: str) -> int | None:
    """Pin this process; return the CPU for nginx's worker (None: unpinned)."""
    if mode == "none" or not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if mode == "split" and len(cpus) < 2:
        raise SystemExit("--pin split needs two CPUs")
    os.sched_setaffinity(0, {cpus[0]})
    return cpus[0] if mode == "same" else cpus[1]


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = settings_from(args)
    with tempfile.TemporaryDirectory(prefix="rawkeep-rev-") as export:
        if args.rawkeep is not None:
            _choose_rawkeep(args.rawkeep, Path(export))
        # The chosen rawkeep is the one measured, installed or not (adapters
        # and the environment line import it only from here on).
        sys.path.insert(1, str(RAWKEEP_ROOT))
        return _run(args, settings)


def _choose_rawkeep(where: str, export: Path) -> None:
    """Point RAWKEEP_ROOT at a directory holding ``rawkeep/``, or at an
    export of a git revision of this repository."""
    global RAWKEEP_ROOT, RAWKEEP_LABEL
    if Path(where, "rawkeep", "__init__.py").exists():
        RAWKEEP_ROOT = Path(where).resolve()
        return
    repo = HERE.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "--verify", f"{where}^{{commit}}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", "--format=tar", commit, "rawkeep"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        raise SystemExit(
            f"--rawkeep: {where!r} is neither a directory with rawkeep/ nor a git revision"
        ) from None
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(export, filter="data")
    RAWKEEP_ROOT, RAWKEEP_LABEL = export, f"commit {commit}, exported"


def _run(args: argparse.Namespace, settings: Settings) -> int:
    random.seed(args.seed)
    # SIGTERM unwinds like Ctrl-C, so nginx is stopped and its prefix removed.
    signal.signal(signal.SIGTERM, _interrupt)
    worker_cpu = _pin(args.pin)

    classes = {a.name: a for a in ADAPTERS}
    missing = [n for n in args.client_list if not classes[n].is_available()]
    names = [n for n in args.client_list if n not in missing]
    if missing:
        log(f"not installed, skipped: {', '.join(missing)} (pip install -e '.[bench]')")

    started = time.monotonic()
    sections: list[str] = []
    metrics: dict[str, Metric] = {}
    imports: list[ImportResult] = []
    memory: list[MemoryResult] = []
    interrupted = False
    server = Nginx(ca_tool=args.ca, worker_cpu=worker_cpu)
    needs_server = any(s != "import" for s in args.suite_list)
    try:
        if needs_server:
            server.start()
            log(f"nginx {server.version} on {HOST}:{server.http_port} / {server.https_port}")
        plain = Target(HOST, server.http_port, tls=False, ca_path=server.ca_path)
        secure = Target(HOST, server.https_port, tls=True, ca_path=server.ca_path)
        adapters = [classes[n](plain) for n in names]
        sections.append(
            "## Environment\n\n"
            + environment(server if needs_server else None, adapters, args.pin)
        )
        print(sections[0] + "\n", flush=True)
        payload = make_payload() if "upload" in args.suite_list else b""
        for suite in args.suite_list:
            log(f"suite {suite}")
            if suite == "small":
                found = suite_small(server, adapters, settings)
            elif suite == "download":
                found = suite_download(server, adapters, settings)
            elif suite == "upload":
                found = suite_upload(server, adapters, settings, payload)
            elif suite == "threads":
                found = suite_threads(server, adapters, settings)
            elif suite == "tls":
                found = suite_tls(server, [classes[n](secure) for n in names], settings)
            elif suite == "import":
                imports = suite_import(adapters, settings.import_runs)
                sections.append(import_table(imports, settings.import_runs))
                print(sections[-1], flush=True)
                continue
            else:
                chosen = [n for n in MEMORY_CLIENTS if n in names]
                memory = suite_memory(
                    server, chosen, settings.memory_connections, settings.memory_rounds
                )
                sections.append(memory_table(memory, settings.memory_connections))
                print(sections[-1], flush=True)
                continue
            for metric in found:
                metrics[metric.key] = metric
                sections.append(metric_table(metric))
                print(sections[-1], flush=True)
            if suite == "tls":
                sections.append(tls_cost_table(metrics["tls"], metrics["tls_new"]))
                print(sections[-1], flush=True)
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping nginx; the tables above are what was finished")
    finally:
        server.stop()
    if interrupted:
        return 130
    sections.append(targets(metrics, imports, memory))
    print(sections[-1], flush=True)
    elapsed = time.monotonic() - started
    command = shlex.join(["python", "benchmarks/run.py", *args.argv])
    footer = f"Run: `{command}`, {elapsed / 60:.1f} minutes; load average at the end: {_load()}."
    print(footer, flush=True)
    report = "\n\n".join([*sections, footer]) + "\n"
    if args.markdown is not None:
        args.markdown.write_text(report)
    if args.json is not None:
        args.json.write_text(json.dumps(_as_data(metrics, imports, memory, args), indent=1))
    return 0


def _as_data(
    metrics: dict[str, Metric],
    imports: Sequence[ImportResult],
    memory: Sequence[MemoryResult],
    args: argparse.Namespace,
) -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "pin": args.pin,
        "quick": args.quick,
        "metrics": {
            key: {
                "title": m.title,
                "unit": m.unit,
                "series": {name: vars(series) for name, series in m.series.items()},
            }
            for key, m in metrics.items()
        },
        "imports": [vars(r) for r in imports],
        "memory": [vars(r) for r in memory],
    }


if __name__ == "__main__":
    sys.exit(main())
