"""The verbs' keywords are typed: mypy --strict catches a misspelt keyword
and a wrong type in a caller's code, on both clients.

mypy runs on a snippet written to a temporary directory, finding this
checkout's rawkeep through MYPYPATH, as it would an installed one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy")

ROOT = Path(__file__).resolve().parent.parent

#: Cold mypy over the package takes several seconds on a busy machine.
MYPY_TIMEOUT = 300

WRONG = """
    import rawkeep

    def sync(client: rawkeep.Client) -> None:
        client.get("http://h/", parms={"a": "1"})  # line 4
        client.post("http://h/", timeout="5")  # line 5
        with client.stream("GET", "http://h/", timeout="5") as response:  # line 6
            response.read()

    async def asynchronous(client: rawkeep.AsyncClient) -> None:
        await client.get("http://h/", parms={"a": "1"})  # line 10
        await client.delete("http://h/", timeout="5")  # line 11
        await client.patch("http://h/", files=[("f", 5)])  # line 12
"""

RIGHT = """
    import io

    import rawkeep

    def sync(client: rawkeep.Client) -> None:
        client.get("http://h/", params={"tags": ["a", "b"], "n": 1}, timeout=5.0)
        client.head("http://h/", headers={"X": "1"}, follow_redirects=True)
        client.options("http://h/", timeout=rawkeep.Timeout(connect=1.0))
        client.post("http://h/", data={"a": True}, files={"f": ("f.txt", b"x", "text/plain")})
        client.put("http://h/", content=io.BytesIO(b"x"), auth=("user", "pw"))
        client.patch("http://h/", json={"a": 1}, timeout=None)
        client.delete("http://h/", params=[("a", None)])
        with client.stream("GET", "http://h/", timeout=2) as response:
            response.read()

    async def asynchronous(client: rawkeep.AsyncClient) -> None:
        await client.get("http://h/", params={"a": "1"}, timeout=5.0)
        await client.post("http://h/", files=[("f", io.BytesIO(b"x")), ("f", b"y")])
        async with client.stream("POST", "http://h/", data={"a": "1"}) as response:
            await response.aread()

    def construct() -> rawkeep.Client:
        return rawkeep.Client(base_url="http://h/api/")
"""


def mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(textwrap.dedent(source).lstrip("\n"))
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
         "--cache-dir", str(tmp_path / "cache"), str(snippet)],
        capture_output=True, text=True, timeout=MYPY_TIMEOUT, cwd=tmp_path, env=env,
        check=False,
    )  # fmt: skip


def test_mypy_catches_misspelt_keywords_and_wrong_types(tmp_path: Path) -> None:
    result = mypy(tmp_path, WRONG)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    lines = sorted(int(line.split(":")[1]) for line in errors)
    assert lines == [4, 5, 6, 10, 11, 12], result.stdout + result.stderr
    assert sum('Unexpected keyword argument "parms"' in line for line in errors) == 2
    assert sum('"timeout"' in line for line in errors) == 3


def test_mypy_accepts_correct_calls(tmp_path: Path) -> None:
    result = mypy(tmp_path, RIGHT)
    assert result.returncode == 0, result.stdout + result.stderr
