"""``python -m rawkeep``: the command line (see docs/cli.md)."""

from __future__ import annotations

import sys

from ._app.cli import main

sys.exit(main())
