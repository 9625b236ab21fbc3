"""When to draw progress bars: on an interactive terminal, or when asked.

Bars on a non-terminal stderr (CI logs, pipes, tests) only bury the one-line messages users
need, so they are off there unless ``CIRCUIT_ATLAS_PROGRESS=1``.
"""

from __future__ import annotations

import os
import sys


def progress_enabled() -> bool:
    forced = os.environ.get("CIRCUIT_ATLAS_PROGRESS")
    if forced is not None:
        return forced not in ("0", "", "false", "no")
    return sys.stderr.isatty()
