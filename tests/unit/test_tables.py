"""How commands print rows (``circuit_atlas/cli/tables.py``): one renderer, no pandas."""

from __future__ import annotations

import csv
import io
import json
import math

import numpy as np
import pandas as pd

from circuit_atlas.cli.options import print_rows, print_table
from circuit_atlas.cli.tables import CELL_WIDTH, csv_text, json_text, table_text

ROWS = [
    {"graph_id": "a", "nodes": 829, "score": 0.123456789, "prompt": None},
    {"graph_id": "longer-id", "nodes": 12, "score": float("nan"), "prompt": "x"},
]


def test_a_table_aligns_text_left_and_numbers_right():
    lines = table_text(ROWS).splitlines()
    assert lines == [
        "graph_id   nodes     score  prompt",
        "a            829  0.123457",
        "longer-id     12       NaN  x",
    ]


def test_the_points_of_a_float_column_line_up():
    rows = [{"weight": 45.359692}, {"weight": -40.946}, {"weight": 2.5}, {"weight": 1e-9}]
    assert table_text(rows[:3]).splitlines() == ["  weight", " 45.3597", "-40.9460", "  2.5000"]
    assert table_text(rows).splitlines()[-1] == "  1e-09"  # too small for fixed point


def test_csv_keeps_every_value_whole_and_json_is_strict():
    parsed = list(csv.DictReader(io.StringIO(csv_text(ROWS))))
    assert float(parsed[0]["score"]) == 0.123456789  # exact, not the table's six digits
    assert parsed[0]["prompt"] == "" and parsed[1]["score"] == ""  # missing and NaN: empty
    records = json.loads(json_text(ROWS))
    assert records[1]["score"] is None and records[0]["prompt"] is None


def test_numpy_values_print_as_the_numbers_they_hold():
    rows = [{"n": np.int64(3), "w": np.float32(0.5), "flag": np.bool_(True)}]
    assert table_text(rows).splitlines()[1].split() == ["3", "0.5", "True"]
    assert csv_text(rows).splitlines()[1] == "3,0.5,True"
    assert json.loads(json_text(rows)) == [{"n": 3, "w": 0.5, "flag": True}]


def test_long_text_and_lists_are_cut_in_tables_only():
    prompts = [f"prompt {i}" for i in range(40)]
    line = table_text([{"prompts": prompts}]).splitlines()[1]
    assert len(line) == CELL_WIDTH and line.endswith("…")
    assert json.loads(json_text([{"prompts": prompts}]))[0]["prompts"] == prompts


def test_no_rows_keeps_the_header_in_csv(capsys):
    print_rows([], "table", columns=["graph_id", "nodes"])
    assert capsys.readouterr().out == "(no rows)\n"
    print_rows([], "csv", columns=["graph_id", "nodes"])
    assert capsys.readouterr().out == "graph_id,nodes\n"
    print_rows([], "json")
    assert capsys.readouterr().out == "[]\n"


def test_a_data_frame_prints_like_its_records(capsys):
    frame = pd.DataFrame(ROWS)
    for fmt in ("table", "csv", "json"):
        print_table(frame, fmt)
        from_frame = capsys.readouterr().out
        print_rows(ROWS, fmt)
        assert from_frame == capsys.readouterr().out, fmt
    print_table(pd.DataFrame({0: [1.5], "x": [math.inf]}), "json")
    assert json.loads(capsys.readouterr().out) == [{"0": 1.5, "x": None}]
