"""A small indirect-object-identification task, written as a CSV any ``attribute`` run can use.

Clean: "When Mary and John went to the store, John gave a drink to" → " Mary" (the indirect
object), foil " John" (the repeated subject). Corrupted: the repeated subject is replaced by a
third name, so the prompt no longer says who the indirect object is (the "ABC" corruption of
Wang et al.), with the same token length.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

TEMPLATES = (
    "When {a} and {b} went to the store, {s} gave a drink to",
    "When {a} and {b} went to the park, {s} gave a ball to",
    "After {a} and {b} arrived at the party, {s} handed a gift to",
    "Then, {a} and {b} had lunch at the cafe. {s} passed the salt to",
)
NAMES = ("Mary", "John", "Alice", "Bob", "Sarah", "Tom", "Anna", "James", "Emma", "David")


def ioi_rows(n: int) -> list[dict[str, str]]:
    """``n`` pairs cycling through templates and name triples, deterministically."""
    triples = [(a, b, c) for a, b, c in itertools.permutations(NAMES[:6], 3)]
    rows = []
    for i in range(n):
        template = TEMPLATES[i % len(TEMPLATES)]
        a, b, c = triples[(i * 7) % len(triples)]
        rows.append(
            {
                "clean": template.format(a=a, b=b, s=b),
                "corrupted": template.format(a=a, b=b, s=c),
                "answer": f" {a}",
                "foil": f" {b}",
            }
        )
    return rows


def write_ioi_csv(path: Path, n: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["clean", "corrupted", "answer", "foil"])
        writer.writeheader()
        writer.writerows(ioi_rows(n))
    return path
