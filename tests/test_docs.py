"""The documentation's code runs: README.md, docs/*.md and docs/examples/*.py.

Conventions for the Python blocks of the pages (```` ```python ````):

- Every block runs, in page order, in one namespace per page: a later block
  may use a name an earlier one defined, as a reader pasting them into one
  interpreter would. Each page runs in its own subprocess (see
  `docs_harness.main`), in a scratch directory holding stand-ins for the
  files the pages open (``report.pdf``, ``big.iso``).
- ``http://127.0.0.1:8080`` is served by ``rawkeep serve``, as the pages
  tell readers to start it, ``127.0.0.1:8081`` by ``rawkeep serve --port
  8081 --http10`` and ``https://127.0.0.1:8443`` by ``rawkeep serve --port
  8443 --tls`` (`docs_harness.SERVE_COMMANDS`), each on a free port. The
  runner rewrites these addresses in the block to the real ports, and
  writes them back in what it printed.
- Each block is bounded (`docs_harness.BLOCK_TIMEOUT`), may connect to
  loopback only, and fails if it leaves a socket unclosed (a
  `ResourceWarning`).
- An HTML comment on the line before the fence changes what is checked:

  ``<!-- doc-test: output -->``
      the block's stdout must equal the next fenced block of the page;
  ``<!-- doc-test: raises NAME -->``
      the block must raise ``rawkeep.NAME`` (or the builtin ``NAME``);
  ``<!-- doc-test: fragment (why) -->``
      not run: an illustration out of context (the body of a callback, a
      call on a placeholder). It must still parse, and every ``rawkeep.X``
      it names must exist;
  ``<!-- doc-test: skip (why) -->``
      not run, not parsed (a signature, not code). Keep these few.

Anything else fails: a block that raises, hangs or leaks, and a marker this
module does not know.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from docs_harness import BLOCK_TIMEOUT, SERVE_COMMANDS, docs_servers

import rawkeep

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
EXAMPLES = sorted((REPO / "docs" / "examples").glob("*.py"))
HARNESS = Path(__file__).resolve().parent / "docs_harness.py"

#: Seconds a whole page may take in its subprocess (each block has its own
#: smaller limit inside it); pytest's own limit for the test that runs it.
PAGE_TIMEOUT = 90.0
#: Seconds each example script may take.
EXAMPLE_TIMEOUT = 60.0
#: The directives whose blocks are executed.
RUNNABLE = ("run", "output", "raises")

_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*doc-test:\s*(?P<body>.*?)\s*-->\s*$")
_DIRECTIVE = re.compile(
    r"^(?:(?P<plain>output)|raises\s+(?P<raises>\w+)"
    r"|(?P<kind>fragment|skip)\s+\((?P<reason>[^)]+)\))$"
)


@dataclass(frozen=True)
class Block:
    """One fenced Python block of a page."""

    page: str  # relative to the repository
    line: int  # of the first code line
    code: str
    directive: str  # "run", "output", "raises", "fragment" or "skip"
    argument: str | None  # the exception name, or the reason
    expected_output: str | None  # the next fenced block, for "output"

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass(frozen=True)
class Fence:
    start: int  # index of the opening fence line
    end: int  # index of the closing fence line
    lang: str
    body: str


def _fences(lines: list[str]) -> list[Fence]:
    fences = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        indent = len(match["indent"])
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = "\n".join(line[indent:] for line in lines[index + 1 : end])
        fences.append(Fence(index, end, match["lang"], body + "\n"))
        index = end + 1
    return fences


def _marker_before(lines: list[str], fence: int) -> str | None:
    index = fence - 1
    while index >= 0 and not lines[index].strip():
        index -= 1
    match = _MARKER.match(lines[index]) if index >= 0 else None
    return None if match is None else match["body"]


def parse_page(path: Path) -> list[Block]:
    """The Python blocks of one page; a malformed marker raises ValueError."""
    lines = path.read_text(encoding="utf-8").splitlines()
    fences = _fences(lines)
    page = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path.name
    blocks = []
    for number, fence in enumerate(fences):
        marker = _marker_before(lines, fence.start)
        if fence.lang != "python":
            if marker is not None:
                raise ValueError(
                    f"{page}:{fence.start + 1}: doc-test marker on a non-Python block"
                )
            continue
        directive, argument, expected = "run", None, None
        if marker is not None:
            match = _DIRECTIVE.match(marker)
            if match is None:
                raise ValueError(f"{page}:{fence.start + 1}: unknown doc-test marker {marker!r}")
            if match["plain"]:
                directive = "output"
                if number + 1 == len(fences):
                    raise ValueError(f"{page}:{fence.start + 1}: output marker, no block after")
                expected = fences[number + 1].body
            elif match["raises"]:
                directive, argument = "raises", match["raises"]
            else:
                directive, argument = match["kind"], match["reason"].strip()
        blocks.append(Block(page, fence.start + 2, fence.body, directive, argument, expected))
    return blocks


def _all_blocks() -> list[Block]:
    return [block for page in PAGES for block in parse_page(page)]


BLOCKS = _all_blocks()


# -- running pages ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def addresses() -> Iterator[dict[str, str]]:
    """The docs servers, as ``{address in the docs: real address}``."""
    with docs_servers() as mapping:
        yield mapping


_results: dict[str, dict[str, Any]] = {}


def _rewrite(text: str, mapping: dict[str, str]) -> str:
    for documented, real in mapping.items():
        text = text.replace(documented, real)
    return text


def _page_results(page: str, addresses: dict[str, str], scratch: Path) -> dict[str, Any]:
    """Run the page's runnable blocks once in a subprocess; cache the results."""
    if page in _results:
        return _results[page]
    runnable = [
        {
            "page": page,
            "line": block.line,
            "code": _rewrite(block.code, addresses),
            "raises": block.argument if block.directive == "raises" else None,
        }
        for block in BLOCKS
        if block.page == page and block.directive in RUNNABLE
    ]
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "blocks.json").write_text(json.dumps(runnable), encoding="utf-8")
    results_path = scratch / "results.json"
    completed = subprocess.run(
        [sys.executable, str(HARNESS), "blocks.json", str(results_path)],
        cwd=scratch,
        capture_output=True,
        text=True,
        timeout=PAGE_TIMEOUT,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    if completed.returncode != 0 or not results_path.exists():
        raise AssertionError(
            f"the runner failed on {page} (exit {completed.returncode}):\n{completed.stderr}"
        )
    results: dict[str, Any] = json.loads(results_path.read_text(encoding="utf-8"))
    results["stderr"] = completed.stderr
    _results[page] = results
    return results


def _restore(text: str, addresses: dict[str, str]) -> str:
    for documented, real in addresses.items():
        text = text.replace(real, documented)
    return text


def _normalise(text: str) -> str:
    """Lines without trailing white space; no blank lines at either end."""
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)


def _rawkeep_names(code: str) -> set[str]:
    tree = ast.parse(code)
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "rawkeep"
    }


@pytest.mark.timeout(PAGE_TIMEOUT + 10)
@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_block(
    block: Block, addresses: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    if block.directive == "skip":
        pytest.skip(f"marked skip: {block.argument}")
    if block.directive == "fragment":
        missing = {name for name in _rawkeep_names(block.code) if not hasattr(rawkeep, name)}
        assert not missing, f"{block.id}: the fragment names unknown rawkeep.{missing}"
        return
    scratch = tmp_path_factory.getbasetemp() / "doc-pages" / block.page.replace("/", "_")
    results = _page_results(block.page, addresses, scratch)
    (result,) = [r for r in results["blocks"] if r["line"] == block.line]
    assert result["status"] == "ok", (
        f"{block.id}: {result['status']} after {result['elapsed']:.1f} s\n{result['error']}"
        f"\n--- stdout\n{result['stdout']}"
    )
    assert result["elapsed"] < BLOCK_TIMEOUT
    if block.directive == "output":
        assert block.expected_output is not None
        printed = _restore(result["stdout"], addresses)
        assert _normalise(printed) == _normalise(block.expected_output), (
            f"{block.id}: the output shown after the block is not what it prints"
        )


PAGES_WITH_CODE = sorted({block.page for block in BLOCKS if block.directive in RUNNABLE})


@pytest.mark.timeout(PAGE_TIMEOUT + 10)
@pytest.mark.parametrize("page", PAGES_WITH_CODE)
def test_page_closes_what_it_opens(
    page: str, addresses: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Once the clients a page left open are closed, no socket is left over."""
    scratch = tmp_path_factory.getbasetemp() / "doc-pages" / page.replace("/", "_")
    results = _page_results(page, addresses, scratch)
    assert not results["end_of_page_leaks"], "\n".join(results["end_of_page_leaks"])


def test_markers_are_well_formed(tmp_path: Path) -> None:
    """A misspelt marker is an error, not a silently run (or skipped) block."""
    page = tmp_path / "page.md"
    page.write_text("<!-- doc-test: skp (typo) -->\n```python\npass\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown doc-test marker"):
        parse_page(page)
    page.write_text("<!-- doc-test: skip -->\n```python\npass\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown doc-test marker"):
        parse_page(page)


def test_pages_name_the_servers_they_run_against() -> None:
    """Each server the blocks run against is one a page tells readers to start."""
    text = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
    for command in SERVE_COMMANDS.values():
        assert f"`{command}`" in text, f"no page says to start `{command}`"
    assert "http.server --bind" not in text, "a page still points readers at http.server"


def test_skips_are_few() -> None:
    skipped = [block.id for block in BLOCKS if block.directive == "skip"]
    assert len(skipped) <= 6, f"too many skipped blocks: {skipped}"


# -- scripts ---------------------------------------------------------------------------


def _run_script(
    path: Path, *args: str, timeout: float = EXAMPLE_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "dev", str(path), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )


@pytest.mark.timeout(EXAMPLE_TIMEOUT + 10)
@pytest.mark.parametrize("script", EXAMPLES, ids=[script.name for script in EXAMPLES])
def test_example_script(script: Path) -> None:
    """Each example exits 0, prints its story, and leaves no socket open."""
    result = _run_script(script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "Warning" not in result.stderr, result.stderr
    assert "Traceback" not in result.stderr, result.stderr


@pytest.mark.timeout(EXAMPLE_TIMEOUT + 10)
def test_timeline_script(tmp_path: Path) -> None:
    """The keep-alive timeline is drawn from a fresh trace, as a valid SVG."""
    svg = tmp_path / "timeline.svg"
    trace = tmp_path / "trace.jsonl"
    script = REPO / "docs" / "tools" / "timeline.py"
    result = _run_script(script, "--output", str(svg), "--trace", str(trace))
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = "".join(root.itertext())
    for word in ("#0", "#1", "stale", "retried", "expired"):
        assert word in text, f"{word!r} missing from the picture"
    events = [json.loads(line)["event"] for line in trace.read_text().splitlines()]
    for name in ("ConnectionReused", "ConnectionExpired", "StaleConnectionDiscarded"):
        assert name in events
    assert "RequestRetried" in events
    committed = REPO / "docs" / "keep-alive-timeline.svg"
    assert ET.parse(committed).getroot().tag == root.tag


@pytest.mark.timeout(EXAMPLE_TIMEOUT + 10)
def test_timeline_learning_script(tmp_path: Path) -> None:
    """The learning picture is drawn from a fresh run in which two closes
    teach the silent server's limit (timed by the kernel), after which
    rawkeep retires idle connections before the server closes them."""
    svg = tmp_path / "learning.svg"
    trace = tmp_path / "trace.jsonl"
    script = REPO / "docs" / "tools" / "timeline.py"
    args = ("--scenario", "learning", "--output", str(svg), "--trace", str(trace))
    result = _run_script(script, *args)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    root = ET.parse(svg).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    text = "".join(root.itertext())
    for words in ("learned 0.6", "(fin)", "candidate", "expired: server_keep_alive", "POST"):
        assert words in text, f"{words!r} missing from the picture"
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    names = [event["event"] for event in events]
    learned = names.index("IdleLimitLearned")
    assert events[learned]["evidence"] == "fin"
    assert events[learned]["idle_limit"] == pytest.approx(0.6, abs=0.02)
    after = events[learned + 1 :]
    expired = [
        event
        for event in after
        if event["event"] == "ConnectionExpired" and event["reason"] == "server_keep_alive"
    ]
    assert len(expired) >= 2
    assert "StaleConnectionDiscarded" not in names[learned + 1 :]
    committed = REPO / "docs" / "keep-alive-learning.svg"
    assert ET.parse(committed).getroot().tag == root.tag


def _tables(text: str) -> dict[str, dict[str, str]]:
    """``{experiment: {client: result}}`` from peers.py's output format."""
    tables: dict[str, dict[str, str]] = {}
    title = None
    for line in text.splitlines():
        if line and not line.startswith(" "):
            title = line.strip()
        elif line.startswith("  ") and title is not None:
            client, _, result = line.strip().partition(" ")
            tables.setdefault(title, {})[client] = result.strip()
    return tables


@pytest.mark.timeout(EXAMPLE_TIMEOUT + 10)
def test_peers_script_agrees_with_comparison() -> None:
    """peers.py still finds, for rawkeep and requests, what comparison.md says."""
    result = _run_script(REPO / "docs" / "tools" / "peers.py", "--clients", "rawkeep,requests")
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr
    measured = _tables(result.stdout)
    page = (REPO / "docs" / "comparison.md").read_text(encoding="utf-8")
    documented: dict[str, dict[str, str]] = {}
    for fence in _fences(page.splitlines()):
        if fence.lang == "text":
            documented.update(_tables(fence.body))
    assert set(measured) == set(documented), "comparison.md lacks a table of peers.py"
    for title, rows in measured.items():
        for client, outcome in rows.items():
            assert documented[title][client] == outcome, (title, client, outcome)
