"""Names a package offers but imports on first use (PEP 562).

``circuit_atlas`` and ``circuit_atlas.analysis.scores`` re-export their most used names so that
code needs one import line; loading them eagerly would make every CLI command pay for the
database driver or the scoring stack. Each package lists its names under ``TYPE_CHECKING`` for
static tools and hands the same map to :func:`lazy_exports` for the interpreter.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, namespace: dict[str, Any], homes: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: each name in ``homes`` is imported from
    its module (``homes[name]``, absolute) on first use and then kept in ``namespace``."""

    def getattr_(name: str) -> Any:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(homes[name]), name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return sorted(set(namespace) | set(homes))

    return getattr_, dir_
