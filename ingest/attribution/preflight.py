"""Checks an attribution job can make before loading a model (which takes seconds to minutes).

No torch here: ``circuit-atlas attribute`` runs these first, so a missing task file, a task file
without the needed columns, a model path that is not there or an id the store would refuse is
reported at once rather than after the model has loaded. ``tasks.load_task`` reads its rows
through ``read_task_rows`` too, so the two can never disagree about what a valid file is.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from circuit_atlas.errors import ModelLoadError, TaskError

ANSWER_COLUMNS = ({"label"}, {"correct_idx", "incorrect_idx"}, {"answer", "foil"})


def read_task_rows(path: str | Path, corrupted_column: str = "corrupted") -> list[dict]:
    """The rows of a CSV/JSONL task file, after checking it has examples, the clean and
    corrupted columns and one of the answer formats (``tasks.py`` describes them)."""
    path = Path(path)
    if not path.is_file():
        raise TaskError(f"task file {path} does not exist")
    rows = _read_rows(path)
    if not rows:
        raise TaskError(f"task file {path} has no examples")
    if not all(isinstance(row, dict) for row in rows):
        raise TaskError(f"task file {path}: every JSONL line must be an object")
    columns = set(rows[0])
    missing = {"clean", corrupted_column} - columns
    if missing:
        raise TaskError(
            f"task file {path} lacks column(s) {', '.join(sorted(missing))} "
            f"(it has: {', '.join(sorted(columns))})"
        )
    if not any(needed <= columns for needed in ANSWER_COLUMNS):
        raise TaskError(
            f"task file {path} has no answer columns: expected 'label', "
            f"'correct_idx'+'incorrect_idx', or 'answer'+'foil' "
            f"(it has: {', '.join(sorted(columns))})"
        )
    return rows


def _read_rows(path: Path) -> list[dict]:
    try:
        if path.suffix == ".jsonl":
            lines = path.read_text().splitlines()
            return [json.loads(line) for line in lines if line.strip()]
        with path.open(newline="") as handle:
            return list(csv.DictReader(handle))
    except (json.JSONDecodeError, csv.Error, UnicodeDecodeError) as error:
        raise TaskError(f"task file {path} is not valid CSV/JSONL: {error}") from None


def check_model_source(source: str) -> None:
    """Refuse a model argument that names a local file or folder that is not there (hub names
    and the ``smollm2-135m`` alias are checked when loading)."""
    path = Path(source)
    if path.exists():
        return
    if source.endswith((".json", ".pt", ".gguf")) or source.startswith((".", "/", "~")):
        raise ModelLoadError(f"model file {source} does not exist")
