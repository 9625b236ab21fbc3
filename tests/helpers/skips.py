"""``skip_test``: pytest.skip with a signature the type checker can read.

pytest 8 (pinned below 9 for pytest-xdist's groups) wraps ``skip`` in a protocol whose
``__call__`` ty 0.0.108 cannot see through, so every ``pytest.skip("why")`` reads to it as a
call with too many arguments. One checked wrapper keeps the rest of the suite free of ignores.
"""

from __future__ import annotations

from typing import NoReturn

import pytest


def skip_test(reason: str) -> NoReturn:
    """Skip the running test, showing ``reason`` in the summary."""
    pytest.skip(reason)  # ty: ignore[too-many-positional-arguments]
