"""``rawkeep demo``: it runs quickly, tells every step, and checks itself.

The demo verifies each step's story against the pool's counters and exits 1
on a mismatch, so exit status 0 already means the events matched the
narration; these tests also pin the lines a reader is told to look for.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rawkeep._app import demo as _demo
from rawkeep._app.labserver import Behaviour
from rawkeep._app.labserver import LabServer as DemoServer

#: Bound (seconds) for a whole demo run; it takes about 2 s.
DEMO_TIMEOUT = 30.0
REPO = Path(__file__).resolve().parent.parent

#: What a reader must see, one entry per step (and the closing table).
KEY_LINES = [
    "* reusing connection #0 (idle ",
    "* connection #0 retired: idle longer than the client's idle timeout (0.25 s)",
    "< Keep-Alive: timeout=1, max=0",
    "* connection #0 retired: server Keep-Alive max reached (Keep-Alive: timeout=1, max=0)",
    "* connection #1 retired: server Keep-Alive timeout 1 s is near",
    "* connection #0 closed: Connection: close, no more requests on it",
    "(the server has closed connection #0 in silence)",
    "* stale connection #0 discarded (closed by the server while idle)",
    "* retrying GET on a new connection (attempt 1; #0: server closed the connection"
    " without sending a response)",
    "! RemoteProtocolError: server closed the connection without sending a response"
    " (on reused connection #1; not retried: POST is not idempotent)",
    "requests  connections      total      each",
    "one pooled Client",
    "a new Client per request",
]


def run_demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rawkeep", "demo", *args],
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )


def test_demo_runs_every_step_quickly() -> None:
    started = time.monotonic()
    result = run_demo()
    elapsed = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert elapsed < 15, f"the demo took {elapsed:.1f} s"
    for number, (title, _) in enumerate(_demo.STEPS, 1):
        assert f"\n{number}. {title}\n" in result.stdout
    for line in KEY_LINES:
        assert line in result.stdout, line
    assert "Traceback" not in result.stdout
    # The table: the pooled client used one connection, the other one each.
    pooled = next(
        line for line in result.stdout.splitlines() if line.startswith("    one pooled Client")
    )
    unpooled = next(
        line for line in result.stdout.splitlines() if line.startswith("    a new Client per")
    )
    requests = str(_demo.MEASURED_REQUESTS)
    assert pooled.split()[3:5] == [requests, "1"]
    assert unpooled.split()[5:7] == [requests, requests]


def test_demo_runs_chosen_steps_only() -> None:
    result = run_demo("1", "4")
    assert result.returncode == 0, result.stderr
    assert "\n1. Reuse" in result.stdout
    assert "\n4. Connection: close" in result.stdout
    assert "\n2. " not in result.stdout
    assert "\n7. " not in result.stdout


@pytest.mark.parametrize("args", [["9"], ["zero"], ["--bogus"]])
def test_demo_bad_arguments(args: list[str]) -> None:
    result = run_demo(*args)
    assert result.returncode == 2
    assert "usage: rawkeep demo" in result.stderr


def test_demo_in_process_leaks_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    # In this process the suite's loopback guard and its ResourceWarning-as-
    # error filter watch every socket the demo's servers and clients open.
    assert _demo.main(["2", "5", "6"]) == 0
    out = capsys.readouterr().out
    assert "stale connection #0 discarded" in out
    assert "not retried: POST is not idempotent" in out


def test_demo_server_hangs_up_on_the_chosen_request() -> None:
    import rawkeep

    with (
        DemoServer(Behaviour(hang_up_on_request=1)) as server,
        rawkeep.Client(timeout=2.0, retries=0) as client,
    ):
        with pytest.raises(rawkeep.RemoteProtocolError):
            client.get(server.url + "/")
        assert server.accepted == 1


def test_demo_server_closes_idle_connections() -> None:
    import rawkeep

    with (
        DemoServer(Behaviour(drop_idle_after=0.1)) as server,
        rawkeep.Client(timeout=2.0) as client,
    ):
        assert client.get(server.url + "/").content == b"hello from connection 0, request 1\n"
        assert server.wait_for_idle_closes(1, timeout=2.0)
        assert server.idle_closes == 1
