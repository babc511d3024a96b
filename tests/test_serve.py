"""``rawkeep serve``: the lab server as a command, run as a subprocess.

Each test starts ``python -m rawkeep serve --port 0 KNOBS``, reads the
address (and, with ``--tls``, the CA) from what it prints, and checks with a
``rawkeep.Client`` that the knob does what its help says. Every wait is
bounded: lines are read through a queue with a deadline, and the process is
interrupted (then killed, if it must be) at the end of each test.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

import pytest

import rawkeep
from rawkeep._app import serve
from rawkeep._app.labroutes import PATHS

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parent.parent
#: Bound (seconds) of every wait: for the server to start, answer or stop.
WAIT = 10.0
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")


@dataclass
class Served:
    """A running ``rawkeep serve`` and what it printed."""

    process: subprocess.Popen[str]
    lines: queue.Queue[str | None]
    banner: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.banner[0].split()[2]

    @property
    def ca(self) -> str:
        match = re.search(r'verify="([^"]+)"', "\n".join(self.banner))
        assert match is not None, self.banner
        return match[1]

    def next_line(self) -> str:
        line = self.lines.get(timeout=WAIT)
        assert line is not None, "the server's stdout ended"
        return line

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        """Send ``sig``; the exit status and stderr."""
        self.process.send_signal(sig)
        try:
            _, err = self.process.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
            raise
        return self.process.returncode, err


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rawkeep", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
    )


@contextlib.contextmanager
def served(*knobs: str) -> Iterator[Served]:
    """``rawkeep serve --port 0 KNOBS``, its banner read; interrupted after."""
    process = spawn("--port", "0", *knobs)
    lines: queue.Queue[str | None] = queue.Queue()
    assert process.stdout is not None
    pump = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
    pump.start()
    running = Served(process, lines)
    try:
        while not running.banner or running.banner[-1] != "Ctrl-C stops it.":
            running.banner.append(running.next_line())
        yield running
    finally:
        if process.poll() is None:
            code, err = running.stop()
            assert (code, "Traceback" in err) == (130, False), err
        pump.join(WAIT)


def recorded(events: list[rawkeep.Event]) -> list[str]:
    return [type(event).__name__ for event in events]


# -- starting, answering, stopping ---------------------------------------------------------


def test_prints_what_it_serves_answers_and_stops_on_ctrl_c() -> None:
    with served() as lab:
        assert re.fullmatch(r"rawkeep serve: http://127\.0\.0\.1:\d+ \(HTTP/1\.1\)", lab.banner[0])
        assert "no Keep-Alive header" in lab.banner[1]
        assert any(line.strip().startswith("/json") for line in lab.banner)
        with rawkeep.Client(timeout=WAIT) as client:
            assert client.get(lab.url + "/").text == "hello from connection 0, request 1\n"
        assert lab.next_line() == "#0 request 1: GET / -> 200, connection kept open"
        code, err = lab.stop()
    assert code == 130
    assert err == "rawkeep serve: stopped (Ctrl-C)\n"


def test_sigterm_stops_it_with_status_0() -> None:
    with served("--quiet") as lab:
        code, err = lab.stop(signal.SIGTERM)
    assert (code, err) == (0, "rawkeep serve: stopped\n")


def test_ctrl_c_in_process_leaves_no_thread(capsys: pytest.CaptureFixture[str]) -> None:
    """``main`` in this (the main) thread; a SIGINT once the server listens."""

    def interrupt_when_listening() -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            if any(t.name == "lab-accept" for t in threading.enumerate()):
                break
            time.sleep(0.01)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    interrupter = threading.Thread(target=interrupt_when_listening)
    interrupter.start()
    try:
        code = serve.main(["--port", "0"])
    finally:
        interrupter.join(WAIT)
    assert code == 130
    assert [t.name for t in threading.enumerate() if t.name.startswith("lab-")] == []
    assert "Ctrl-C stops it." in capsys.readouterr().out


# -- the keep-alive knobs ------------------------------------------------------------------


def test_idle_timeout_closes_idle_connections_in_silence() -> None:
    events: list[rawkeep.Event] = []
    with served("--idle-timeout", "0.3") as lab:
        assert "closed after 0.3 s" in lab.banner[1]
        with rawkeep.Client(timeout=WAIT, on_event=events.append) as client:
            first = client.get(lab.url + "/")
            time.sleep(0.8)
            second = client.get(lab.url + "/")
    assert "keep-alive" not in first.headers
    assert (first.connection_id, second.connection_id) == (0, 1)
    assert "StaleConnectionDiscarded" in recorded(events)


def test_keep_alive_header_announces_timeout_and_max() -> None:
    knobs = ("--keep-alive-header", "--idle-timeout", "5", "--max", "3")
    with served(*knobs) as lab, rawkeep.Client(timeout=WAIT) as client:
        responses = [client.get(lab.url + "/") for _ in range(4)]
    assert [r.headers.get("keep-alive") for r in responses] == [
        "timeout=5, max=2",
        "timeout=5, max=1",
        "timeout=5, max=0",
        "timeout=5, max=2",
    ]
    assert [r.connection_id for r in responses] == [0, 0, 0, 1]


def test_max_without_the_header_ends_with_connection_close() -> None:
    with served("--max", "2") as lab, rawkeep.Client(timeout=WAIT) as client:
        responses = [client.get(lab.url + "/") for _ in range(3)]
    assert [r.headers.get("connection") for r in responses] == [None, "close", None]
    assert all("keep-alive" not in r.headers for r in responses)
    assert [r.connection_id for r in responses] == [0, 0, 1]


@pytest.mark.parametrize(
    ("knob", "version", "connection"),
    [("--http10", "HTTP/1.0", None), ("--close", "HTTP/1.1", "close")],
)
def test_http10_and_close_end_every_connection(
    knob: str, version: str, connection: str | None
) -> None:
    with served(knob) as lab, rawkeep.Client(timeout=WAIT) as client:
        responses = [client.get(lab.url + "/json") for _ in range(2)]
        # Each connection's thread logs after its response: in either order.
        logged = sorted(lab.next_line() for _ in responses)
    assert logged == [f"#{n} request 1: GET /json -> 200, connection closed" for n in (0, 1)]
    assert [(r.http_version, r.connection_id) for r in responses] == [(version, 0), (version, 1)]
    assert responses[0].headers.get("connection") == connection


def test_hang_up_makes_the_keep_alive_race() -> None:
    events: list[rawkeep.Event] = []
    client = rawkeep.Client(timeout=WAIT, on_event=events.append)
    with served("--hang-up", "2") as lab, client:
        client.get(lab.url + "/")
        assert client.get(lab.url + "/").status == 200
    assert "RequestRetried" in recorded(events)


# -- the answer knobs ----------------------------------------------------------------------


def test_slow_delays_every_answer() -> None:
    with served("--slow", "0.5") as lab, rawkeep.Client(timeout=WAIT) as client:
        with pytest.raises(rawkeep.ReadTimeout):
            client.get(lab.url + "/", timeout=rawkeep.Timeout(WAIT, read=0.2))
        started = time.monotonic()
        assert client.get(lab.url + "/").status == 200
        assert time.monotonic() - started >= 0.5


def test_chunked_bodies() -> None:
    with served("--chunked") as lab, rawkeep.Client(timeout=WAIT) as client:
        response = client.get(lab.url + "/json")
    assert response.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.headers
    assert response.json() == {"connection": 0, "request": 1}


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_compress_when_the_client_accepts_it(coding: str) -> None:
    with served("--compress", coding) as lab, rawkeep.Client(timeout=WAIT) as client:
        compressed = client.get(lab.url + "/items?count=2")
        plain = client.get(lab.url + "/items?count=2", headers={"Accept-Encoding": "identity"})
    assert compressed.headers.get("content-encoding") == coding
    assert compressed.json() == plain.json()
    assert "content-encoding" not in plain.headers


def test_redirects_before_every_answer() -> None:
    client = rawkeep.Client(timeout=WAIT, follow_redirects=True)
    with served("--redirects", "2") as lab, client:
        response = client.get(lab.url + "/json?x=1")
    assert [hop.headers["location"] for hop in response.history] == [
        "/json?x=1&hop=1",
        "/json?x=1&hop=2",
    ]
    assert response.json() == {"connection": 0, "request": 3}


@needs_openssl
def test_tls_with_the_printed_ca() -> None:
    with served("--tls") as lab:
        assert lab.url.startswith("https://127.0.0.1:")
        ca = lab.ca
        with rawkeep.Client(timeout=WAIT, verify=ca) as client:
            response = client.get(lab.url + "/json")
            assert response.json() == {"connection": 0, "request": 1}
        with rawkeep.Client(timeout=WAIT) as untrusting, pytest.raises(rawkeep.TLSError):
            untrusting.get(lab.url + "/")
        assert Path(ca).exists()
    assert not Path(ca).parent.exists(), "the certificate's directory is left behind"


def test_tls_without_openssl_says_so() -> None:
    process = spawn("--port", "0", "--tls", env={"PATH": ""})
    _, err = process.communicate(timeout=WAIT)
    assert process.returncode == 1
    assert "needs the openssl command" in err
    assert "Traceback" not in err


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "0.0.0.0"], "loopback only"),
        (["--host", "192.0.2.1"], "loopback only"),
        (["--host", "example.org"], "give an IP address"),
        (["--port", "70000"], "--port 70000"),
        (["--idle-timeout", "0"], "--idle-timeout 0"),
        (["--idle-timeout", "1.5", "--keep-alive-header"], "whole seconds"),
        (["--max", "0"], "--max 0"),
        (["--hang-up", "0"], "--hang-up 0"),
        (["--slow", "-1"], "--slow -1"),
        (["--redirects", "101"], "--redirects 101"),
        (["--compress", "br"], "invalid choice"),
        (["--idle-timeout", "soon"], "invalid float value"),
    ],
)
def test_bad_values_exit_2_before_binding(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:  # the port is taken: binding would exit 1
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code = serve.main(["--port", str(taken.getsockname()[1]), *args])
    assert code == 2
    err = capsys.readouterr().err
    assert "rawkeep serve: error:" in err
    assert message in err


def test_a_taken_port_exits_1_and_says_so() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = spawn("--port", str(port))
        _, err = process.communicate(timeout=WAIT)
    assert process.returncode == 1
    assert err.startswith(f"rawkeep serve: can't listen on 127.0.0.1:{port}: ")
    assert "Traceback" not in err


def test_lab_page_lists_every_path_and_option() -> None:
    """docs/lab.md and the server can't drift: each path and option is on it."""
    page = (REPO / "docs" / "lab.md").read_text(encoding="utf-8")
    for paths, _ in PATHS:
        for path in paths.split(", "):
            assert f"`{path}" in page, f"docs/lab.md does not list {path}"
    for action in serve.build_parser()._actions:
        for option in action.option_strings:
            if option.startswith("--") and option != "--help":
                assert f"`{option}" in page, f"docs/lab.md does not list {option}"
