"""Third-party servers in subprocesses: free ports, start, wait, stop by pid.

The interop suite runs real servers (nginx, gunicorn, uvicorn, the standard
library's ``http.server``) as child processes, each on a free 127.0.0.1 port
with its own configuration and logs in a temporary directory. This module is
their life cycle, kept in one place so that every one of them is stopped the
same way:

* start: ``subprocess.Popen`` with stdout and stderr going to files (never
  pipes: a chatty server would block on a full pipe);
* ready: poll a TCP connect to the port until it succeeds, for at most
  ``STARTUP_TIMEOUT`` seconds, failing early (with the server's own output)
  if the process exits;
* stop: the process's children are noted first (nginx and gunicorn fork
  workers), then the process gets SIGTERM, then SIGKILL after
  ``STOP_TIMEOUT`` seconds; any child still alive after that is killed by
  its pid. Nothing is looked up by name.

Every wait is bounded in time and every loop in count.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType

#: Seconds a server may take to listen (gunicorn boots a worker: ~1 s here).
STARTUP_TIMEOUT = 20.0
#: Seconds between SIGTERM and SIGKILL, and again before giving up on children.
STOP_TIMEOUT = 5.0
#: Poll interval (seconds) of the readiness and shutdown loops.
POLL = 0.02


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago.

    The port is released before the server binds it, so another process
    could take it in between; on a test machine that is rare, and a server
    that can't bind fails its readiness check loudly.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _children(pid: int) -> list[int]:
    """Direct and indirect children of `pid` (Linux /proc), best effort."""
    found: list[int] = []
    pending = [pid]
    for _ in range(64):  # bounded: a server tree is a handful of processes
        if not pending:
            break
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            with contextlib.suppress(OSError, ValueError):
                kids = [int(text) for text in task.read_text().split()]
                found.extend(kids)
                pending.extend(kids)
    return found


def _is_alive(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the command name in parentheses, which may contain
    # spaces: take the text after the last ")".
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


class ServerProcess:
    """A server subprocess listening on ``port``; a context manager.

    Args:
        name: a short name for messages and log file names.
        argv: the command line.
        port: the 127.0.0.1 port the server will listen on.
        workdir: where its output files go (``<name>.out``, ``<name>.err``).
        env: extra environment variables.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port: int,
        workdir: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.workdir = workdir
        self.env = {**os.environ, **(env or {})}
        self.stdout_path = workdir / f"{name}.out"
        self.stderr_path = workdir / f"{name}.err"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def output(self) -> str:
        """What the server wrote to stdout and stderr so far (for messages)."""
        parts = []
        for path in (self.stdout_path, self.stderr_path):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(errors="replace")[-4000:])
        return "\n".join(parts)

    def start(self) -> None:
        with (
            self.stdout_path.open("wb") as out,
            self.stderr_path.open("wb") as err,
        ):
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.workdir,
                env=self.env,
            )
        self._wait_until_listening()

    def _wait_until_listening(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.process.returncode} before listening"
                    f" on {self.port}:\n{self.output()}"
                )
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            time.sleep(POLL)
        self.stop()
        raise RuntimeError(f"{self.name} did not listen on {self.port}:\n{self.output()}")

    def stop(self) -> list[str]:
        """SIGTERM, then SIGKILL; children too. Returns what had to be forced."""
        process = self.process
        if process is None:
            return []
        forced: list[str] = []
        children = _children(process.pid)
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                forced.append(f"{self.name} ({process.pid}) ignored SIGTERM")
                process.kill()
                process.wait(STOP_TIMEOUT)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in children:
            while _is_alive(child) and time.monotonic() < deadline:
                time.sleep(POLL)
            if _is_alive(child):
                forced.append(f"{self.name} child {child} outlived its parent")
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(child, signal.SIGKILL)
        return forced

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        forced = self.stop()
        if exc_type is None and forced:
            raise AssertionError("server did not stop cleanly: " + "; ".join(forced))
