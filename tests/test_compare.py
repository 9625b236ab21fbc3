"""Cross-prompt comparison: metrics by hand, Cypher against pure Python, consensus, statistics."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from score_graphs import build, err, feat, logit, tok

from circuit_atlas.analysis.compare.consensus import consensus_graph
from circuit_atlas.analysis.compare.metrics import (
    influence_overlap,
    jaccard,
    spearman_shared,
    weighted_overlap,
)
from circuit_atlas.analysis.compare.pairwise import compare_graphs
from circuit_atlas.analysis.compare.stored import compare_stored, store_consensus
from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest import load_graph
from circuit_atlas.queries.library import run_query
from circuit_atlas.store import CircuitStore

from conftest import bundled, error_lines, run_cli

ATTRIBUTION_GRAPHS = ["bee-insect-clt.json.gz", "nobel-clt.json.gz", "dollar.json.gz"]


def test_metrics_by_hand():
    a = pd.Series({"x": 1.0, "y": -2.0, "z": 3.0, "u": 4.0})
    b = pd.Series({"x": 2.0, "y": -1.0, "z": 5.0, "w": 1.0})
    assert jaccard(a.index, b.index) == 3 / 5  # shared x y z; union x y z u w
    # Σmin(|a|,|b|) = 1 + 1 + 3 + 0 + 0 = 5;  Σmax = 2 + 2 + 5 + 4 + 1 = 14
    assert weighted_overlap(a, b) == 5 / 14
    # shared x y z: a = (1, -2, 3) ranks (2, 1, 3); b = (2, -1, 5) ranks (2, 1, 3) → 1
    assert spearman_shared(a, b) == pytest.approx(1.0)
    assert math.isnan(spearman_shared(a.iloc[:2], b.iloc[:2]))  # fewer than 3 shared
    p = pd.Series({"x": 0.5, "y": 0.3, "z": 0.2})
    q = pd.Series({"x": 0.2, "y": 0.3, "w": 0.5})
    assert influence_overlap(p, q) == pytest.approx(0.2 + 0.3)  # min over shared x, y


def small(graph_id: str, weights: dict[tuple[str, str], float]) -> CircuitGraph:
    nodes = {"T0": tok(0), "E": err(0, 1), "F1": feat(0, 1, 1), "F2": feat(1, 1, 2),
             "L": logit(1, 5, 0.9)}  # fmt: skip
    return build(graph_id, nodes, [(s, t, w) for (s, t), w in weights.items()])


def test_consensus_keeps_edges_by_support_with_mean_weights():
    g1 = small("g1", {("T0", "F1"): 1.0, ("F1", "F2"): 2.0, ("F2", "L"): 1.0, ("E", "F2"): 1.0})
    g2 = small("g2", {("T0", "F1"): 3.0, ("F1", "F2"): 4.0, ("F2", "L"): 1.0})
    g3 = small("g3", {("T0", "F1"): 5.0, ("T0", "F2"): 1.0, ("F2", "L"): 1.0})
    half = consensus_graph([g1, g2, g3], 0.5)
    nodes, edges = half.to_dataframes()
    got = {(s.split(":")[0] + s.split(":")[-2], t.split(":")[0] + t.split(":")[-2]): (w, sup)
           for s, t, w, sup in zip(edges["source_key"], edges["target_key"], edges["weight"],
                                   edges["support"])}  # fmt: skip
    assert got == {
        ("embedding", "feature1"): (3.0, 1.0),  # T0→F1 in all three: mean(1, 3, 5)
        ("feature1", "feature2"): (3.0, 2 / 3),  # F1→F2 in two: mean(2, 4)
        ("feature2", "logit5"): (1.0, 1.0),
    }
    assert consensus_graph([g1, g2, g3], 1.0).n_edges == 2  # intersection
    assert consensus_graph([g1, g2, g3], 1 / 3).n_edges == 5  # union
    assert half.metadata.extra["sources"] == ["g1", "g2", "g3"]


def test_mixed_models_and_too_few_graphs_are_refused():
    g1 = small("g1", {("T0", "F1"): 1.0})
    other = small("g2", {("T0", "F1"): 1.0})
    other.metadata = other.metadata.model_copy(update={"model": "another-model"})
    with pytest.raises(CircuitAtlasError, match="different models .* --allow-mixed"):
        compare_graphs([g1, other])
    assert len(compare_graphs([g1, other], allow_mixed=True).pairs) == 1
    with pytest.raises(CircuitAtlasError, match="at least two graphs"):
        compare_graphs([g1])
    with pytest.raises(CircuitAtlasError, match="different models"):
        consensus_graph([g1, other])


def test_cypher_jaccard_equals_pure_python_on_bundled_graphs(fresh_store: CircuitStore):
    graphs = [load_graph(bundled(name)) for name in ATTRIBUTION_GRAPHS]
    for graph in graphs:
        fresh_store.write_graph(graph)
    ids = sorted(g.graph_id for g in graphs)
    cypher = run_query(fresh_store, "feature_jaccard", {"graph_ids": ids})
    pure = compare_stored(fresh_store, ids, "feature").pairs
    merged = cypher.merge(pure, on=["graph_a", "graph_b"], suffixes=("", "_pure"))
    assert len(merged) == 3
    assert (merged["shared"] == merged["shared_pure"]).all()
    assert (merged["jaccard"] == merged["jaccard_pure"]).all()


def test_identical_graphs_are_at_distance_zero_and_differ_from_others():
    from score_graphs import random_attribution_graph

    from circuit_atlas.analysis.compare.omnibus import latent_distribution_pvalues, omnibus

    a = random_attribution_graph(1, n_layers=4, n_pos=4, features_per_slot=2, density=0.6)
    b = CircuitGraph(a.nodes, a.edges, a.metadata.model_copy(update={"graph_id": "copy"}))
    c = random_attribution_graph(2, n_layers=4, n_pos=4, features_per_slot=2, density=0.6)
    c.metadata = c.metadata.model_copy(update={"graph_id": "other"})
    result = omnibus([a, b, c], by="node", n_components=2)
    assert result.distances.loc[a.graph_id, "copy"] == pytest.approx(0.0, abs=1e-9)
    assert result.distances.loc[a.graph_id, "other"] > 0.01
    tests = latent_distribution_pvalues([a, b], n_bootstraps=50)
    assert 0.0 <= tests["pvalue"][0] <= 1.0
    assert tests["pvalue"][0] > 0.5  # the same graph twice


def test_compare_and_consensus_commands(bolt_env, tmp_path: Path):
    for name in ATTRIBUTION_GRAPHS:
        run_cli("ingest", str(bundled(name)), env=bolt_env, check=True)
    ids = sorted(load_graph(bundled(n)).graph_id for n in ATTRIBUTION_GRAPHS)
    report = tmp_path / "compare.html"
    out = run_cli("compare", *ids, "--report", str(report), "--json", env=bolt_env, check=True)
    payload = json.loads(out.stdout)
    assert len(payload["pairs"]) == 3 and set(payload["matrix"]) >= {"jaccard", "spearman"}
    text = report.read_text()
    assert text.startswith("<!doctype html>") and "data:image/png;base64," in text
    assert "src='http" not in text  # self-contained

    made = run_cli("consensus", *ids[:2], "--union", env=bolt_env, check=True)
    assert "consensus of 2 graphs" in made.stdout
    links = run_cli(
        "cypher", "MATCH (c:Graph)-[r:DERIVED_FROM {operation: 'consensus'}]->(s:Graph) "
        "RETURN count(r) AS links", "--format", "csv", env=bolt_env, check=True,
    )  # fmt: skip
    assert links.stdout.splitlines() == ["links", "2"]

    mixed = run_cli("compare", ids[0], "gpt2-ioi", env=bolt_env)
    assert mixed.returncode == 1 and "no graph 'gpt2-ioi'" in error_lines(mixed)[0]


@pytest.mark.slow
@pytest.mark.skipif(not (Path(__file__).resolve().parents[2] / "shared" / "data").exists(),
                    reason="../shared/data is absent")  # fmt: skip
def test_analogy_corpus_jaccard_from_cypher_equals_json_and_consensus_is_queryable(
    fresh_store: CircuitStore,
):
    from circuit_atlas.ingest.neuronpedia import cantor_unpair

    from conftest import SHARED_GRAPHS

    files = sorted((SHARED_GRAPHS / "neuronpedia" / "analogies").glob("*.json"))
    assert len(files) == 57
    direct: dict[str, set[tuple[int, int]]] = {}
    for path in files:
        raw = json.loads(path.read_text())
        direct[raw["metadata"]["slug"]] = {
            cantor_unpair(n["feature"])
            for n in raw["nodes"]
            if n["feature_type"] == "cross layer transcoder"
        }
        fresh_store.write_graph(load_graph(path))
    cypher = run_query(fresh_store, "feature_jaccard", {"graph_ids": []})
    assert len(cypher) == 57 * 56 // 2
    for row in cypher.itertuples(index=False):
        a, b = direct[row.graph_a], direct[row.graph_b]
        assert row.shared == len(a & b)
        assert row.jaccard == len(a & b) / len(a | b)

    ids = sorted(direct)
    result, graph = store_consensus(fresh_store, ids, 0.5)
    assert result.status == "created"
    rows = fresh_store.query(
        "MATCH (c:Graph {graph_id: $c})<-[:IN_GRAPH]-(n:Node) RETURN count(n) AS nodes",
        {"c": graph.graph_id},
    )
    assert rows == [{"nodes": graph.n_nodes}] and graph.n_nodes > 100
    sources = fresh_store.query(
        "MATCH (:Graph {graph_id: $c})-[:DERIVED_FROM]->(s:Graph) RETURN count(s) AS n",
        {"c": graph.graph_id},
    )
    assert sources == [{"n": 57}]
    supported = run_query(fresh_store, "top_edges_per_layer_pair", {"graph_id": graph.graph_id})
    assert len(supported) > 0
    assert np.isfinite(supported["weight"]).all()
