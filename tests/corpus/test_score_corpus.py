"""Scores of every real Neuronpedia graph, through the store, against ``docs/scores.md``.

Full, pruned, top-1 and top-22 subgraph scores are finite and in [0, 1], equal the documented
table, are written back, and come out identical after the graphs are deleted and re-ingested.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from circuit_atlas.analysis.scores.stored import score_stored_graph
from circuit_atlas.analysis.scores.table import ScoreReport
from circuit_atlas.ingest import load_graph
from circuit_atlas.store import CircuitStore

from helpers.data import needs_shared

pytestmark = [pytest.mark.slow, needs_shared()]

DOCS = Path(__file__).resolve().parents[2] / "docs"
sys.path.insert(0, str(DOCS))
from score_table import corpus_files, table_row  # noqa: E402


def score_all(store: CircuitStore, graph_ids: list[str]) -> dict:
    return {gid: score_stored_graph(store, gid, pin_top=[1, 22]).report.rows for gid in graph_ids}


def test_every_real_graph_scores_like_the_docs_and_survives_reingest(fresh_store: CircuitStore):
    files = corpus_files()
    assert len(files) == 67
    graphs = [load_graph(path) for path in files]
    for graph in graphs:
        fresh_store.write_graph(graph)
    ids = [g.graph_id for g in graphs]
    first = score_all(fresh_store, ids)

    documented = set((DOCS / "scores.md").read_text().splitlines())
    for path, graph in zip(files, graphs):
        rows = first[graph.graph_id]
        assert [r.scope for r in rows] == ["full", "pruned", "subgraph", "subgraph"]
        for row in rows:
            for value in (row.replacement, row.completeness):
                assert math.isfinite(value) and 0.0 <= value <= 1.0, (graph.graph_id, row)
        report = ScoreReport(graph.graph_id, 0.8, 0.98, True, rows)
        assert table_row(path, report) in documented, path.name

    written = fresh_store.query(
        "MATCH (g:Graph) WHERE g.replacement_score >= 0 AND g.completeness_score <= 1 "
        "RETURN count(g) AS graphs"
    )
    assert written == [{"graphs": 67}]
    assert fresh_store.query("MATCH (s:Subgraph) RETURN count(s) AS c") == [{"c": 134}]

    for graph in graphs:
        assert fresh_store.write_graph(graph).status == "unchanged"
        fresh_store.delete_graph(graph.graph_id)
        fresh_store.write_graph(graph)
    assert score_all(fresh_store, ids) == first
