"""The real corpus: all 10 demo graphs and 57 analogy graphs in one store.

Per graph the database's own counts equal the file's and read-back is exact; a cross-prompt
Cypher question is answered exactly as a pure-Python pass over the JSON files answers it.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from circuit_atlas.ingest import load_graph
from circuit_atlas.ingest.neuronpedia import cantor_unpair
from circuit_atlas.store import CircuitStore

from helpers.data import SHARED_GRAPHS, needs_shared
from helpers.graphs import assert_same_graph

pytestmark = [pytest.mark.slow, needs_shared()]

FEATURES_IN_AT_LEAST = """
MATCH (g:Graph)<-[:IN_GRAPH]-(n:Node)-[:INSTANCE_OF]->(f:Feature)
WHERE g.graph_id IN $graph_ids
WITH f, count(DISTINCT g) AS graphs
WHERE graphs >= $min_graphs
RETURN f.layer AS layer, f.feature AS feature, graphs
ORDER BY graphs DESC, layer, feature
"""


def test_whole_corpus_ingests_exactly(fresh_store: CircuitStore):
    files = sorted((SHARED_GRAPHS / "neuronpedia").glob("*/*.json"))
    assert len(files) == 67
    analogy_ids = []
    for path in files:
        graph = load_graph(path)
        raw = json.loads(path.read_text())
        fresh_store.write_graph(graph)
        assert fresh_store.count_graph(graph.graph_id) == (len(raw["nodes"]), len(raw["links"]))
        assert_same_graph(graph, fresh_store.read_graph(graph.graph_id))
        if path.parent.name == "analogies":
            analogy_ids.append(graph.graph_id)

    # Pure Python over the JSON files: in how many analogy graphs does each feature occur?
    per_feature: Counter[tuple[int, int]] = Counter()
    for path in sorted((SHARED_GRAPHS / "neuronpedia" / "analogies").glob("*.json")):
        raw = json.loads(path.read_text())
        features = {
            cantor_unpair(n["feature"])
            for n in raw["nodes"]
            if n["feature_type"] == "cross layer transcoder"
        }
        per_feature.update(features)
    expected = sorted(
        ((layer, index, count) for (layer, index), count in per_feature.items() if count >= 10),
        key=lambda r: (-r[2], r[0], r[1]),
    )
    rows = fresh_store.query(FEATURES_IN_AT_LEAST, {"graph_ids": analogy_ids, "min_graphs": 10})
    assert [(r["layer"], r["feature"], r["graphs"]) for r in rows] == expected
    assert len(expected) > 0
