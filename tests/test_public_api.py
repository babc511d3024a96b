"""The public surface: API.md's names, their docs, py.typed, import cost.

The names are read from API.md itself (``<repo>/../shared/API.md``), so the
contract and this test cannot drift apart silently.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import h11
import pytest

import rawkeep

REPO = Path(__file__).resolve().parents[1]
API_MD = REPO.parent / "shared" / "API.md"

#: The names API.md lists, for when API.md is not next to the clone (e.g. a
#: packaged sdist). test_fallback_matches_api_md keeps this list honest
#: wherever API.md is present.
FALLBACK_NAMES = frozenset(
    {
        # client and what it returns
        "Client",
        "Response",
        "Headers",
        "Timeout",
        "PoolStats",
        # events
        "Event",
        "ConnectionOpened",
        "ConnectionReused",
        "ConnectionExpired",
        "StaleConnectionDiscarded",
        "ConnectionClosed",
        "RequestRetried",
        # errors
        "RawkeepError",
        "InvalidURL",
        "ClientClosed",
        "ConnectError",
        "TimeoutError",
        "ConnectTimeout",
        "ReadTimeout",
        "WriteTimeout",
        "PoolTimeout",
        "RemoteProtocolError",
        "LocalProtocolError",
        "TLSError",
        "ProxyError",
        "TooManyRedirects",
        "DecodingError",
        "HTTPStatusError",
    }
)

# Backticked CapWords that are Python constants, not rawkeep names.
_NOT_NAMES = frozenset({"None", "True", "False"})


def names_in_api_md(text: str) -> frozenset[str]:
    """Every public name API.md mentions.

    Two spellings occur: qualified (``rawkeep.Timeout``) and, in the Events,
    Response and Exceptions sections, a bare class name in backticks
    (```ConnectionOpened```).
    """
    qualified = re.findall(r"\brawkeep\.([A-Za-z_]\w*)", text)
    bare = re.findall(r"`([A-Z][A-Za-z0-9]*)`", text)
    return frozenset(qualified + bare) - _NOT_NAMES


def api_names() -> frozenset[str]:
    if API_MD.is_file():
        return names_in_api_md(API_MD.read_text(encoding="utf-8"))
    return FALLBACK_NAMES


API_NAMES = sorted(api_names())


def test_fallback_matches_api_md() -> None:
    if not API_MD.is_file():
        pytest.skip(f"{API_MD} not found; using the hard-coded list")
    assert names_in_api_md(API_MD.read_text(encoding="utf-8")) == FALLBACK_NAMES


def test_all_contains_every_api_name() -> None:
    missing = set(API_NAMES) - set(rawkeep.__all__)
    assert not missing, f"in API.md but not in rawkeep.__all__: {sorted(missing)}"


def test_all_has_no_duplicates_and_every_entry_exists() -> None:
    assert len(rawkeep.__all__) == len(set(rawkeep.__all__))
    for name in rawkeep.__all__:
        assert hasattr(rawkeep, name), name


def test_star_import_gives_exactly_all() -> None:
    namespace: dict[str, object] = {}
    exec("from rawkeep import *", namespace)
    namespace.pop("__builtins__")
    assert set(namespace) == set(rawkeep.__all__)


def test_version_is_a_string() -> None:
    assert isinstance(rawkeep.__version__, str)
    assert re.match(r"^\d+\.\d+", rawkeep.__version__)


def test_importable_and_documented() -> None:
    problems = []
    for name in API_NAMES:
        namespace: dict[str, object] = {}
        exec(f"from rawkeep import {name}", namespace)
        obj = namespace[name]
        assert obj is getattr(rawkeep, name)
        # The object's *own* docstring: not inherited, and not the signature
        # that @dataclass writes when there is none.
        doc = vars(obj).get("__doc__") if isinstance(obj, type) else obj.__doc__
        if not isinstance(doc, str) or not doc.strip():
            problems.append(f"{name}: no docstring")
        elif doc.startswith(f"{name}("):
            problems.append(f"{name}: only the dataclass signature as docstring")
        # Defined in an underscored module and re-exported.
        if not obj.__module__.startswith("rawkeep._"):
            problems.append(f"{name}: defined in {obj.__module__}")
    assert problems == []


def test_py_typed_is_shipped() -> None:
    package = Path(rawkeep.__file__).parent
    assert (package / "py.typed").is_file()


def test_package_has_a_docstring() -> None:
    assert rawkeep.__doc__
    assert rawkeep.__doc__.strip()


# -- import cost --------------------------------------------------------------

# Run in a fresh interpreter with -S, so that site-packages .pth hooks (editable
# install finders, setuptools' distutils shim) do not muddy sys.modules; the
# directories holding rawkeep and h11 go on PYTHONPATH instead.
_PROBE = textwrap.dedent(
    """
    import sys
    import rawkeep
    print("\\n".join(sorted(sys.modules)))
    """
)


def _modules_after_import() -> set[str]:
    path = [str(Path(rawkeep.__file__).parents[1]), str(Path(h11.__file__).parents[1])]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = os.pathsep.join(path)
    result = subprocess.run(
        [sys.executable, "-S", "-c", _PROBE],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


@pytest.fixture(scope="module")
def loaded_modules() -> set[str]:
    return _modules_after_import()


def test_import_loads_only_stdlib_and_h11(loaded_modules: set[str]) -> None:
    assert "rawkeep" in loaded_modules
    allowed = set(sys.stdlib_module_names) | {"rawkeep", "h11", "__main__"}
    foreign = sorted(name for name in loaded_modules if name.split(".")[0] not in allowed)
    assert not foreign, f"import rawkeep loaded non-stdlib modules: {foreign}"


@pytest.mark.parametrize(
    "module", ["ssl", "_ssl", "json", "http.cookiejar", "socket", "select", "logging"]
)
def test_import_does_not_load(loaded_modules: set[str], module: str) -> None:
    assert module not in loaded_modules
