"""The wheel a user installs: its metadata, its files, its one dependency.

The package is built from a copy of the sources (pyproject.toml, README.md,
LICENSE and the package), so the checkout gains no build directories, and
without build isolation: the build back-end is the one the test extra
installs (setuptools >= 77, the first to read ``license`` as an SPDX
expression), so no package index is needed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import rawkeep

if TYPE_CHECKING:
    from email.message import Message

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _setuptools_version() -> tuple[int, ...]:
    try:
        import setuptools
    except ImportError:
        return (0,)
    return tuple(int(part) for part in setuptools.__version__.split(".")[:2] if part.isdigit())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if _setuptools_version() < (77,):
        pytest.skip("needs setuptools >= 77 (pip install -e '.[test]' installs it)")
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "rawkeep", source / "rawkeep", ignore=shutil.ignore_patterns("__pycache__")
    )
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(out), str(source)],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    (built,) = out.glob("rawkeep-*.whl")
    return built


def _metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return Parser().parsestr(archive.read(name).decode())


def test_wheel_metadata(wheel: Path) -> None:
    meta = _metadata(wheel)
    assert meta["Name"] == "rawkeep"
    assert meta["Version"] == rawkeep.__version__
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Requires-Python"] == ">=3.10"
    # h11 is the one run-time dependency; everything else is an extra.
    runtime = [r for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r]
    assert runtime == ["h11<0.17,>=0.16"]


def test_wheel_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = archive.read(entry_points).decode()
    assert "rawkeep/py.typed" in names  # type checkers read the annotations
    assert "rawkeep/__init__.py" in names
    assert "rawkeep/_app/cli.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "benchmarks/", "docs/")) for n in names)
    assert "rawkeep = rawkeep._app.cli:main" in scripts
