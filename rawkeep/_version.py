"""The package version, in one place (read by pyproject.toml and User-Agent)."""

from __future__ import annotations

__version__ = "0.1.0"
