"""Network namespaces for tests that need a network of their own.

Some behaviour can only be shown with a network the test controls: a host
name with both an IPv6 and an IPv4 address (the machine's /etc/hosts is not
ours to edit), or packets dropped silently by a firewall rule. A test makes
a namespace of its own (``ip netns add``: its own loopback, its own
nftables, nothing shared with the machine), runs a child Python process in
it (``netns_child.py``) and reads what the child printed. The namespace and
its /etc/netns/NAME directory (the files ``ip netns exec`` mounts over the
child's /etc) are deleted afterwards, whatever happened.

Needs root and iproute2; ``unavailable()`` says why not, for a skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["CHILD", "Namespace", "finish", "namespace", "unavailable"]

#: The script run inside the namespace.
CHILD = Path(__file__).with_name("netns_child.py")
#: The checkout whose rawkeep the child imports.
REPO = Path(rawkeep.__file__).resolve().parent.parent
#: Seconds any ``ip`` command may take.
IP_TIMEOUT = 10.0


def unavailable(*commands: str) -> str | None:
    """Why a namespace test can't run here, or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux-only"
    if os.geteuid() != 0:
        return "creating a network namespace needs root"
    for command in ("ip", *commands):
        if shutil.which(command) is None:
            return f"{command!r} is not installed"
    return None


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", *args], capture_output=True, text=True, timeout=IP_TIMEOUT, check=False
    )


class Namespace:
    """A namespace made by ``namespace()``: run the child in it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start ``netns_child.py args`` inside the namespace."""
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
        command = ["ip", "netns", "exec", self.name, sys.executable, str(CHILD), *args]
        return subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def run(self, *args: str, timeout: float = 60.0) -> dict[str, Any]:
        """Run the child to the end; the JSON object it printed last."""
        return finish(self.start(*args), timeout)


def finish(child: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    """Wait for ``child`` (killed after ``timeout`` s); the JSON it printed last."""
    try:
        out, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        out, err = child.communicate(timeout=IP_TIMEOUT)
        raise AssertionError(f"the namespace child ran over {timeout} s:\n{err}") from None
    if child.returncode != 0:
        raise AssertionError(f"the namespace child failed ({child.returncode}):\n{err}{out}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


@contextlib.contextmanager
def namespace(tag: str, *, hosts: str | None = None) -> Iterator[Namespace]:
    """A new network namespace, its loopback up, with ``hosts`` as its
    /etc/hosts when given; deleted on exit."""
    name = f"rawkeep-{tag}-{os.getpid()}"
    etc = Path("/etc/netns") / name
    created = _ip("netns", "add", name)
    if created.returncode != 0:
        raise RuntimeError(f"ip netns add {name} failed: {created.stderr.strip()}")
    try:
        if hosts is not None:
            etc.mkdir(parents=True)
            (etc / "hosts").write_text(hosts)
        up = _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
        if up.returncode != 0:
            raise RuntimeError(f"lo would not come up in {name}: {up.stderr.strip()}")
        yield Namespace(name)
    finally:
        _ip("netns", "delete", name)
        shutil.rmtree(etc, ignore_errors=True)
