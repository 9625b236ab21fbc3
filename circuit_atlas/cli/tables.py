"""Rows as people and programs read them: an aligned table, CSV or strict JSON, without pandas.

One renderer for every command, whether its rows come from a query (records) or from an
analysis (a data frame, turned into records first), so every table looks the same, and commands
that only list or query rows print them without importing pandas (half a second at start-up).

Table cells: text left-aligned, numbers right-aligned; floats to six significant digits, with
one number of decimals a column so the points line up; an undefined score (NaN in a column of
numbers) as ``NaN``; a missing value as an empty cell; lists joined with commas and any text cut
at ``CELL_WIDTH`` characters (one list of 57 prompts would otherwise push every row thousands of
spaces wide). CSV and JSON keep every value whole: CSV writes floats exactly (``repr``) and NaN
or a missing value as an empty field, JSON writes both as ``null``.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# The widest a table cell is printed (CSV and JSON keep every character).
CELL_WIDTH = 60
COLUMN_GAP = "  "
NO_ROWS = "(no rows)"


def column_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every key of ``rows``, in the order each first appears."""
    return list(dict.fromkeys(key for row in rows for key in row))


def plain(value: Any) -> Any:
    """A numpy or pandas scalar as the Python value it holds (others unchanged)."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "ndim", None) == 0:
        return item()
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def short_cell(value: Any, width: int = CELL_WIDTH) -> str:
    """One table cell as text (see the module docstring)."""
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else _g6(value)
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(plain(item)) for item in value)
    elif isinstance(value, dict):
        value = json.dumps(value, default=str)
    text = str(value)
    return text[: width - 1] + "…" if len(text) > width else text


def _decimals(column: list[Any]) -> int | None:
    """Decimal places that print every float of a numeric column to six significant digits,
    so the column's points line up; None where fixed point would mislead (very large or very
    small values: each cell then keeps its own ``.6g`` form)."""
    finite = [v for v in column if isinstance(v, float) and math.isfinite(v)]
    if not finite or any(abs(v) >= 1e15 or 0 < abs(v) < 1e-4 for v in finite):
        return None
    places = [len(text.split(".")[1]) if "." in text else 0 for text in map(_g6, finite)]
    return max(places)


def _g6(value: float) -> str:
    return format(value, ".6g")


def _cell(value: Any, numeric: bool, decimals: int | None) -> str:
    if not numeric and _is_nan(value):
        return ""  # in a text column NaN is pandas' mark for a missing value
    if decimals is not None and isinstance(value, float) and math.isfinite(value):
        return f"{value:.{decimals}f}"
    return short_cell(value)


def table_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """An aligned table with a header line, or ``(no rows)``."""
    columns = list(columns) if columns is not None else column_names(rows)
    if not rows or not columns:
        return NO_ROWS
    values = [[plain(row.get(column)) for column in columns] for row in rows]
    numeric = [
        all(_is_number(line[i]) for line in values if line[i] is not None)
        and any(line[i] is not None for line in values)
        for i in range(len(columns))
    ]
    decimals = [
        _decimals([line[i] for line in values]) if numeric[i] else None for i in range(len(columns))
    ]
    cells = [
        [_cell(value, number, places) for value, number, places in zip(line, numeric, decimals)]
        for line in values
    ]
    lines = [list(columns), *cells]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]

    def aligned(line: list[str]) -> str:
        parts = (
            text.rjust(width) if right else text.ljust(width)
            for text, width, right in zip(line, widths, numeric)
        )
        return COLUMN_GAP.join(parts).rstrip()

    return "\n".join(aligned(line) for line in lines)


def _csv_field(value: Any) -> Any:
    value = plain(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


def csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """CSV with a header line; every value whole."""
    columns = list(columns) if columns is not None else column_names(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_csv_field(row.get(column)) for column in columns] for row in rows)
    return buffer.getvalue()


def json_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Strict JSON records (NaN and infinities as ``null``)."""
    from circuit_atlas.cli.json_output import strict_json

    records = [dict(row) for row in rows]
    if columns is not None:
        records = [{column: row.get(column) for column in columns} for row in records]
    return strict_json(records)


def rows_text(
    rows: Sequence[Mapping[str, Any]], fmt: str = "table", columns: Sequence[str] | None = None
) -> str:
    """``rows`` in one of ``table``, ``csv`` or ``json``."""
    if fmt == "json":
        return json_text(rows, columns)
    if fmt == "csv":
        return csv_text(rows, columns)
    return table_text(rows, columns)
