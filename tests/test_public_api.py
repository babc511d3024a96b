"""The public surface: its names, their docs, py.typed, import cost.

The contract is ``PUBLIC_NAMES`` below. Three places must agree on it:
this set, ``rawkeep.__all__`` and docs/api.md (its summary table and one
section or entry per name), so none of them can drift from the others
silently. The test double, ``rawkeep.testing``, is a module apart with a
contract of its own (``TESTING_NAMES``), checked the same way against its
``__all__`` and the part of docs/api.md under its heading
(``TESTING_HEADING``); ``import rawkeep`` must not load it.
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
API_DOC = REPO / "docs" / "api.md"

#: Every public name rawkeep provides, besides ``__version__``. Adding or
#: removing one means changing this set, ``rawkeep.__all__`` and docs/api.md
#: together.
PUBLIC_NAMES = frozenset(
    {
        # the clients and what they return
        "Client",
        "AsyncClient",
        "Response",
        "SentRequest",
        "InterimResponse",
        "Headers",
        "Timeout",
        "PoolStats",
        # lifecycle events
        "Event",
        "ConnectionOpened",
        "ConnectionReused",
        "ConnectionExpired",
        "StaleConnectionDiscarded",
        "ConnectionClosed",
        "RequestRetried",
        "IdleLimitLearned",
        "RequestSent",
        "ResponseReceived",
        "TLSDetails",
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

#: The contract as ``__all__`` and docs/api.md spell it: with ``__version__``.
EXPORTED = PUBLIC_NAMES | {"__version__"}

#: Every public name of ``rawkeep.testing``.
TESTING_NAMES = frozenset(
    {
        "LocalServer",
        "Reply",
        "ServerRequest",
        "Behaviour",
        "Handler",
        "Routes",
        "CertificateError",
    }
)
#: The heading of docs/api.md's part on ``rawkeep.testing``: its last section.
TESTING_HEADING = "## `rawkeep.testing`"


def _api_doc() -> tuple[str, str]:
    """docs/api.md split in two: the package's part, and ``rawkeep.testing``'s."""
    text = API_DOC.read_text(encoding="utf-8")
    before, found, after = text.partition(f"\n{TESTING_HEADING}\n")
    assert found, f"docs/api.md has no {TESTING_HEADING} section"
    assert not re.search(r"^## ", after, flags=re.MULTILINE), "rawkeep.testing is not last"
    return before, after


def _table_names(text: str, header_line: str = "| group | names |") -> list[str]:
    """The backticked names in the second column of api.md's summary table."""
    lines = text.splitlines()
    header = lines.index(header_line)
    names: list[str] = []
    for line in lines[header + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        names.extend(re.findall(r"`(\w+)`", cells[1]))
    return names


def _section_names(text: str) -> list[str]:
    """Names with a section (``## `Client` ``) or an entry (``**`Event`**``)."""
    headings = re.findall(r"^## `(\w+)`$", text, flags=re.MULTILINE)
    entries = re.findall(r"^\*\*`(\w+)`\*\*", text, flags=re.MULTILINE)
    return headings + entries


def _diff(found: list[str] | set[str], where: str) -> str:
    missing = sorted(EXPORTED - set(found))
    extra = sorted(set(found) - EXPORTED)
    return f"{where}: missing {missing}, not in the contract {extra}"


def test_all_is_the_contract() -> None:
    assert set(rawkeep.__all__) == EXPORTED, _diff(set(rawkeep.__all__), "rawkeep.__all__")


def test_api_doc_table_lists_the_contract() -> None:
    names = _table_names(_api_doc()[0])
    assert len(names) == len(set(names)), f"listed twice: {sorted(names)}"
    assert set(names) == EXPORTED, _diff(names, "docs/api.md table")


def test_api_doc_documents_every_name_once() -> None:
    names = _section_names(_api_doc()[0])
    assert len(names) == len(set(names)), f"documented twice: {sorted(names)}"
    assert set(names) == EXPORTED, _diff(names, "docs/api.md sections")


# -- rawkeep.testing ----------------------------------------------------------


def test_testing_all_is_its_contract() -> None:
    import rawkeep.testing

    assert len(rawkeep.testing.__all__) == len(set(rawkeep.testing.__all__))
    assert set(rawkeep.testing.__all__) == TESTING_NAMES
    for name in rawkeep.testing.__all__:
        assert hasattr(rawkeep.testing, name), name
    assert not TESTING_NAMES & set(rawkeep.__all__), "a testing name is in rawkeep.__all__"


def test_api_doc_lists_and_documents_the_testing_names() -> None:
    part = _api_doc()[1]
    listed = _table_names(part, "| module | names |")
    assert sorted(listed) == sorted(TESTING_NAMES), "docs/api.md rawkeep.testing table"
    documented = re.findall(r"^### `(\w+)`$", part, flags=re.MULTILINE)
    assert sorted(documented) == sorted(TESTING_NAMES), "docs/api.md rawkeep.testing sections"


def test_testing_classes_have_docstrings() -> None:
    import rawkeep.testing

    aliases = {"Handler", "Routes"}  # type aliases: documented in api.md only
    for name in sorted(TESTING_NAMES - aliases):
        obj = getattr(rawkeep.testing, name)
        assert isinstance(obj, type), name
        doc = vars(obj).get("__doc__")
        assert isinstance(doc, str), f"{name}: no docstring"
        assert doc.strip(), f"{name}: no docstring"
        assert not doc.startswith(f"{obj.__name__}("), f"{name}: only a signature"


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
    for name in sorted(PUBLIC_NAMES):
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


def test_import_loads_neither_the_testing_module_nor_the_app(loaded_modules: set[str]) -> None:
    assert "rawkeep.testing" not in loaded_modules
    assert not {name for name in loaded_modules if name.startswith("rawkeep._app")}


@pytest.mark.parametrize(
    "module",
    ["ssl", "_ssl", "json", "http.cookiejar", "socket", "select", "logging", "asyncio"],
)
def test_import_does_not_load(loaded_modules: set[str], module: str) -> None:
    assert module not in loaded_modules
