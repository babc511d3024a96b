"""Two rawkeep trees side by side: small GETs, a download, 8 threads, interleaved.

    python benchmarks/ab.py --base c66ea74             # this tree against a revision
    python benchmarks/ab.py --base ../old --pin split  # a directory; client, nginx apart

For a change on the hot path: the same three workloads as run.py's small,
download and threads suites, measured for two rawkeep trees in ONE run
against one private nginx. Each measurement is a fresh interpreter that
imports one tree (so the two never share a process), and each round runs
every (tree, workload) pair once in a random order: a slow moment of the
machine lands on both sides. The table gives, per workload, each tree's
median over the rounds and the ratio new/old taken round by round, then
medianed: for throughput above 1 is faster, for CPU time per request
below 1 is cheaper.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

from _server import BIG_SIZE, Nginx

HERE: Final = Path(__file__).resolve().parent

#: What one measurement runs, in its own interpreter: argv = tree, workload,
#: port, count. It prints {"rate": per second, "cpu_us": CPU us per unit}.
WORKER: Final = r"""
import json, sys, threading, time
sys.path.insert(0, sys.argv[1])
import rawkeep
assert rawkeep.__file__.startswith(sys.argv[1]), rawkeep.__file__
workload, port, count = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
base = f"http://127.0.0.1:{port}"
with rawkeep.Client(max_connections_per_host=16) as client:
    if workload == "small":
        for _ in range(200):
            client.get(base + "/small")
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(count):
            client.get(base + "/small")
        units = count
    elif workload == "download":
        client.get(base + "/small")
        cpu, wall = time.process_time(), time.perf_counter()
        size = 0
        for _ in range(count):
            with client.stream("GET", base + "/big.bin") as response:
                for piece in response.iter_bytes():
                    size += len(piece)
        units = size / (1024 * 1024)  # MiB
    else:  # threads: 8 threads share the client
        def work(n):
            for _ in range(n):
                client.get(base + "/small")
        warm = [threading.Thread(target=work, args=(50,)) for _ in range(8)]
        for t in warm: t.start()
        for t in warm: t.join()
        threads = [threading.Thread(target=work, args=(count // 8,)) for _ in range(8)]
        cpu, wall = time.process_time(), time.perf_counter()
        for t in threads: t.start()
        for t in threads: t.join()
        units = (count // 8) * 8
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
print(json.dumps({"rate": units / wall, "cpu_us": cpu / units * 1e6}))
"""

WORKLOADS: Final = {"small": 5000, "download": 4, "threads": 8000}
UNITS: Final = {"small": "GET/s", "download": "MiB/s", "threads": "GET/s"}


def export(rev: str, into: Path) -> Path:
    """A git revision of this repository, exported to ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(HERE.parent), "archive", rev, "rawkeep"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def measure(tree: Path, workload: str, port: int, count: int, cpu: int | None) -> dict[str, float]:
    command = [sys.executable, "-c", WORKER, str(tree), workload, str(port), str(count)]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{tree} {workload} failed:\n{result.stderr}")
    return json.loads(result.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--base", required=True, help="the old tree: a directory or git revision")
    parser.add_argument("--new", default=str(HERE.parent), help="the new tree (default: this one)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--pin", choices=("none", "split"), default="none")
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="rawkeep-ab-") as scratch:
        base = Path(args.base)
        old = base.resolve() if (base / "rawkeep").is_dir() else export(args.base, Path(scratch))
        trees = {"old": old, "new": Path(args.new).resolve()}
        client_cpu = 0 if args.pin == "split" else None
        server = Nginx(worker_cpu=1 if args.pin == "split" else None)
        server.start()
        try:
            results: dict[tuple[str, str], list[dict[str, float]]] = {}
            for number in range(args.rounds):
                pairs = [(name, load) for name in trees for load in WORKLOADS]
                rng.shuffle(pairs)
                for name, load in pairs:
                    count = WORKLOADS[load]
                    result = measure(trees[name], load, server.http_port, count, client_cpu)
                    results.setdefault((name, load), []).append(result)
                print(f"round {number + 1}/{args.rounds} done", file=sys.stderr)
        finally:
            server.stop()
    print(f"old: {args.base}  new: {args.new}  rounds: {args.rounds}  pin: {args.pin}")
    print(f"Python {sys.version.split()[0]}, nginx {server.version}, {os.cpu_count()} CPUs\n")
    print(
        "| workload | old rate | new rate | new/old rate | old CPU us | new CPU us | new/old CPU |"
    )
    print("| --- | --: | --: | --: | --: | --: | --: |")
    for load in WORKLOADS:
        old_runs, new_runs = results[("old", load)], results[("new", load)]
        pairs = list(zip(old_runs, new_runs, strict=True))  # one of each per round
        rate_ratio = statistics.median(n["rate"] / o["rate"] for o, n in pairs)
        cpu_ratio = statistics.median(n["cpu_us"] / o["cpu_us"] for o, n in pairs)
        print(
            f"| {load} ({UNITS[load]}) "
            f"| {statistics.median(r['rate'] for r in old_runs):,.0f} "
            f"| {statistics.median(r['rate'] for r in new_runs):,.0f} "
            f"| {rate_ratio:.3f} "
            f"| {statistics.median(r['cpu_us'] for r in old_runs):.1f} "
            f"| {statistics.median(r['cpu_us'] for r in new_runs):.1f} "
            f"| {cpu_ratio:.3f} |"
        )
    print(f"\n(download CPU us are per MiB; {BIG_SIZE // (1024 * 1024)} MiB per download)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
