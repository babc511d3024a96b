"""Figures of a reliability run, for docs/reliability.md.

Suites call `record` with what they measured (requests, faults, errors,
connection counts). The figures are printed (``pytest -s`` shows them) and,
when the environment variable ``RAWKEEP_FIGURES`` names a file, appended to
it as one JSON object per line, which is how the figures in the docs were
collected.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

_LOCK = threading.Lock()


def record(suite: str, name: str, figures: dict[str, object]) -> None:
    """Print `figures` and append them to ``$RAWKEEP_FIGURES`` if it is set."""
    line = {"suite": suite, "name": name, "time": round(time.time(), 3), **figures}
    text = json.dumps(line, sort_keys=False)
    print(f"\nFIGURES {text}")
    target = os.environ.get("RAWKEEP_FIGURES")
    if target:
        with _LOCK, Path(target).open("a", encoding="utf-8") as out:
            out.write(text + "\n")
