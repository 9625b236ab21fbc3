"""Named registries: a module files its functions under names, and the CLI lists the names.

ROI methods, attribution methods and attribution metrics each keep a ``dict`` and decorate its
entries with ``register = registrar(TABLE)``, so adding one is one decorated function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

Entry = TypeVar("Entry", bound=Callable)


def registrar(table: dict[str, Entry]) -> Callable[[str], Callable[[Entry], Entry]]:
    """A decorator factory: ``@register("name")`` files the function in ``table``."""

    def register(name: str) -> Callable[[Entry], Entry]:
        def add(function: Entry) -> Entry:
            table[name] = function
            return function

        return add

    return register
