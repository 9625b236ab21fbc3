"""Where test data lives: graphs bundled in the package, and ../shared/data (real files from
other tools; tests that need them skip cleanly without them)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
SHARED_GRAPHS = SHARED / "graphs"


def bundled(name: str) -> Path:
    """A real example graph shipped inside the package (see circuit_atlas/data/SOURCES.md)."""
    return Path(str(resources.files("circuit_atlas") / "data" / name))


def needs_shared() -> pytest.MarkDecorator:
    return pytest.mark.skipif(not SHARED_GRAPHS.exists(), reason="../shared/data is absent")
