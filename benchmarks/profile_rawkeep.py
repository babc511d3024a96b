"""Where rawkeep's time goes: cProfile over the small-GET and download paths.

    python benchmarks/profile_rawkeep.py [--requests 20000] [--downloads 10] [--top 25]

Runs against the benchmark's private nginx (see ``_server.py``) and prints,
per path, the functions with the most own time, as microseconds per request
(small GETs) or milliseconds per 64 MiB download. cProfile adds a roughly
fixed cost to every Python call, so the totals are inflated and many small
calls look worse than they are: read the table for where time goes, and the
benchmark (``run.py``) for how much there is. ``--sort cumulative`` shows
the call chain instead.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(1, str(HERE.parent))

from _server import BIG_SIZE, SMALL_BODY, Nginx  # noqa: E402

import rawkeep  # noqa: E402


def small_gets(client: rawkeep.Client, url: str, n: int) -> None:
    for _ in range(n):
        if client.get(url).content != SMALL_BODY:
            raise RuntimeError("unexpected body")


def downloads(client: rawkeep.Client, url: str, n: int) -> None:
    for _ in range(n):
        total = 0
        with client.stream("GET", url) as response:
            for chunk in response.iter_bytes():
                total += len(chunk)
        if total != BIG_SIZE:
            raise RuntimeError(f"downloaded {total} bytes")


def report(
    profile: cProfile.Profile, per: int, unit: str, scale: float, top: int, sort: str
) -> None:
    stats = pstats.Stats(profile)
    rows = []
    total = 0.0
    for (filename, line, function), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        total += own
        where = f"{Path(filename).parent.name}/{Path(filename).name}:{line}" if line else filename
        rows.append((own, cumulative, calls, f"{function} ({where})"))
    rows.sort(key=lambda row: row[0 if sort == "own" else 1], reverse=True)
    print(f"{'own ' + unit:>12} {'cum ' + unit:>12} {'calls/op':>9}  function")
    for own, cumulative, calls, name in rows[:top]:
        own, cumulative = own / per * scale, cumulative / per * scale
        print(f"{own:>12.2f} {cumulative:>12.2f} {calls / per:>9.1f}  {name}")
    print(f"{total / per * scale:>12.2f} {'':>12} {'':>9}  total own time (profiled)")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="0 skips the small GETs")
    parser.add_argument("--downloads", type=int, default=10, help="0 skips the downloads")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", choices=("own", "cumulative"), default="own")
    args = parser.parse_args()
    if args.requests < 0 or args.downloads < 0:
        parser.error("--requests and --downloads must be 0 or more")
    with Nginx() as server, rawkeep.Client() as client:
        small, big = server.url("/small"), server.url("/big.bin")
        if args.requests:
            small_gets(client, small, 1000)  # warm-up
            start = time.perf_counter()
            small_gets(client, small, args.requests)
            plain = (time.perf_counter() - start) / args.requests * 1e6
            profile = cProfile.Profile()
            profile.runcall(small_gets, client, small, args.requests)
            print(f"## small GET: {plain:.1f} us/request unprofiled; profiled, per request:\n")
            report(profile, args.requests, "us", 1e6, args.top, args.sort)
        if not args.downloads:
            print(f"\nconnections opened: {client.pool_stats().opened}")
            return
        downloads(client, big, 1)
        start = time.perf_counter()
        downloads(client, big, args.downloads)
        seconds = (time.perf_counter() - start) / args.downloads
        profile = cProfile.Profile()
        profile.runcall(downloads, client, big, args.downloads)
        print(
            f"\n## 64 MiB download: {seconds * 1e3:.1f} ms ({BIG_SIZE / seconds / 1e6:.0f} MB/s)"
            " unprofiled; profiled, per download:\n"
        )
        report(profile, args.downloads, "ms", 1e3, args.top, args.sort)
        print(f"\nconnections opened: {client.pool_stats().opened}")


if __name__ == "__main__":
    main()
