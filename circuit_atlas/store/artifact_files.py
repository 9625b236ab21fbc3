"""Where adjacency artifacts live on disk: their names, checksums and half-written leftovers.

Kept apart from ``artifact`` (the file format, which needs numpy, pandas and pyarrow) so that a
store can open, list and clean up without importing the array stack: ``circuit-atlas graphs``
starts in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from pathlib import Path

from circuit_atlas.local_server import _pid_alive


def artifact_path(directory: Path, graph_id: str) -> Path:
    """A file name that is safe for any graph id and unique per id (hash suffix)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", graph_id)[:80]
    digest = hashlib.sha256(graph_id.encode()).hexdigest()[:12]
    return directory / f"{safe}-{digest}.npz"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def remove_dead_temporaries(directory: Path) -> list[Path]:
    """Delete half-written artifacts (``*.tmp<pid>.npz``) whose writing process has died."""
    if not directory.is_dir():
        return []
    removed = []
    for path in directory.glob("*.tmp*.npz"):
        pid = path.suffixes[-2].removeprefix(".tmp") if len(path.suffixes) >= 2 else ""
        if pid.isdigit() and not _pid_alive(int(pid)):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed
