"""The per-graph summaries (``store/summaries.py``) and the queries that read them.

Each summary-reading query must answer exactly what the edge-by-edge Cypher it replaced answers
(kept here, verbatim, as the reference), on both servers, on graphs with ties, parallel edges,
tokens without a layer and features shared across graphs; graphs stored before summaries existed
are refused with a clear error until ``upgrade`` adds them.
"""

from __future__ import annotations

import pandas as pd
import pytest

from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest import load_graph
from circuit_atlas.ingest.neuronpedia import parse_neuronpedia
from circuit_atlas.queries.library import QueryError, run_query
from circuit_atlas.store import CircuitStore
from circuit_atlas.store.summaries import TOP_EDGES_KEPT, graph_summary, layer_pair_rows
from circuit_atlas.testing.synthetic import layered_neuronpedia

from helpers.cli import run_cli
from helpers.data import bundled
from helpers.graphs import build, err, feat, random_attribution_graph, tok

pytestmark = pytest.mark.backends("arcadedb", "neo4j")

# The queries as they were before summaries: every edge, every call.
EDGE_BY_EDGE_TOP_EDGES = """
MATCH (g:Graph {graph_id: $graph_id})
WHERE g.status = 'ready'
MATCH (a:Node {graph_id: $graph_id})-[e:EDGE]->(b:Node)
WITH coalesce(a.layer, -1) AS source_layer, coalesce(b.layer, -1) AS target_layer,
     a.node_key AS source, b.node_key AS target, e.weight AS weight
ORDER BY abs(weight) DESC, source, target
WITH source_layer, target_layer, collect({source: source, target: target, weight: weight}) AS edges
WITH source_layer, target_layer, edges[0..$k] AS top
UNWIND range(0, size(top) - 1) AS i
RETURN source_layer, target_layer, i + 1 AS rank, top[i].source AS source,
       top[i].target AS target, top[i].weight AS weight
ORDER BY source_layer, target_layer, rank
"""
EDGE_BY_EDGE_ERROR_SHARE = """
MATCH (g:Graph {graph_id: $graph_id}), (a:Node {graph_id: $graph_id})-[e:EDGE]->(:Node)
WHERE g.status = 'ready' AND a.kind IN ['error', 'feature']
WITH a.layer AS layer, a.kind AS kind, sum(abs(e.weight)) AS mass
WITH layer,
     sum(CASE WHEN kind = 'error' THEN mass ELSE 0.0 END) AS error_weight,
     sum(CASE WHEN kind = 'feature' THEN mass ELSE 0.0 END) AS feature_weight
RETURN layer, error_weight, feature_weight,
       error_weight / (error_weight + feature_weight) AS error_share
ORDER BY layer
"""
NODE_BY_NODE_JACCARD = """
MATCH (g:Graph)
WHERE g.status = 'ready' AND (g.graph_id IN $graph_ids OR size($graph_ids) = 0)
OPTIONAL MATCH (g)<-[:IN_GRAPH]-(:Node)-[:INSTANCE_OF]->(f:Feature)
WITH g.graph_id AS graph, collect(DISTINCT f) AS features
WITH collect({graph: graph, features: features}) AS graphs
UNWIND graphs AS a
UNWIND graphs AS b
WITH a, b WHERE a.graph < b.graph
WITH a.graph AS graph_a, b.graph AS graph_b, size(a.features) AS size_a, size(b.features) AS size_b,
     size([f IN a.features WHERE f IN b.features]) AS shared
RETURN graph_a, graph_b, shared, size_a, size_b,
       CASE WHEN size_a + size_b - shared = 0 THEN 1.0
            ELSE toFloat(shared) / (size_a + size_b - shared) END AS jaccard
ORDER BY graph_a, graph_b
"""


def reference(store: CircuitStore, cypher: str, **params: object) -> pd.DataFrame:
    return pd.DataFrame(store.query(cypher, params))


def assert_same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Same rows in the same order; sums to 1e-12 relative (the server adds in its own order)."""
    if expected.empty:  # no rows: the driver gives no columns either
        assert got.empty
        return
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected)
    for column in got.columns:
        left, right = got[column].tolist(), expected[column].tolist()
        if any(isinstance(v, float) for v in left):
            assert left == pytest.approx(right, rel=1e-12, abs=1e-15), column
        else:
            assert left == right, column


def tied_graph() -> CircuitGraph:
    """Equal |weights| across signs and parallel (channel) edges, so only the key tie-break
    orders them; tokens have no layer; one error node."""
    nodes = {
        "t0": tok(0), "t1": tok(1), "a": feat(0, 0, 1), "b": feat(0, 1, 2),
        "c": feat(1, 1, 3), "d": feat(1, 0, 4), "e": err(0, 1),
    }  # fmt: skip
    edges = [
        ("t0", "a", 1.0), ("t1", "a", -1.0), ("t0", "b", 1.0), ("t1", "b", 0.5),
        ("a", "c", -2.0), ("b", "c", 2.0), ("a", "d", 2.0), ("b", "d", -2.0),
        ("t1", "c", 0.25), ("e", "c", 0.5),
    ]  # fmt: skip
    graph = build("tied", nodes, edges)
    extra = graph.edges.iloc[[4, 5]].copy()
    extra["channel"] = "attn"
    edges_frame = pd.concat([graph.edges, extra], ignore_index=True)
    return CircuitGraph(graph.nodes, edges_frame, graph.metadata)


def wide_graph(graph_id: str, features: tuple[int, int]) -> CircuitGraph:
    """Feature indices past 32 bits (kept as string codes) beside ordinary ones."""
    nodes = {"t": tok(0), "a": feat(0, 0, features[0]), "b": feat(1, 0, features[1])}
    return build(graph_id, nodes, [("t", "a", 1.0), ("a", "b", 0.5)])


def stored_graphs(store: CircuitStore) -> list[CircuitGraph]:
    graphs = [
        wide_graph("wide-a", (2**40, 3)),
        wide_graph("wide-b", (2**40, 4)),
        load_graph(bundled("dollar.json.gz")),
        tied_graph(),
        random_attribution_graph(3, n_layers=4, n_pos=3, density=0.6),
        parse_neuronpedia(
            layered_neuronpedia(400, 6000, n_layers=6, n_pos=5, seed=2, slug="layered"),
            bundled("x"),
        ),
    ]
    for graph in graphs:
        store.write_graph(graph)
    return graphs


def test_summary_queries_answer_what_the_edge_by_edge_queries_did(fresh_store: CircuitStore):
    graphs = stored_graphs(fresh_store)
    for graph in graphs:
        gid = graph.graph_id
        for k in (1, 3, TOP_EDGES_KEPT):
            got = run_query(
                fresh_store, "top_edges_per_layer_pair", {"graph_id": gid, "k": k, "limit": 10**6}
            )
            assert_same(got, reference(fresh_store, EDGE_BY_EDGE_TOP_EDGES, graph_id=gid, k=k))
        got = run_query(fresh_store, "error_share_per_layer", {"graph_id": gid})
        assert_same(got, reference(fresh_store, EDGE_BY_EDGE_ERROR_SHARE, graph_id=gid))
    ids = [g.graph_id for g in graphs]
    for chosen in ([], ids[:2], [ids[0], ids[3]], [ids[1]], ids[2:4]):
        got = run_query(fresh_store, "feature_jaccard", {"graph_ids": chosen})
        assert_same(got, reference(fresh_store, NODE_BY_NODE_JACCARD, graph_ids=chosen))
    # the corpus shares features, so the per-feature count is exercised, not just zeros
    assert run_query(fresh_store, "feature_jaccard", {"graph_ids": []})["shared"].max() > 0


def test_a_graph_without_summaries_is_refused_until_upgrade(fresh_store: CircuitStore):
    graph = random_attribution_graph(1, n_layers=3, n_pos=2, density=0.5)
    fresh_store.write_graph(graph)
    expected = run_query(fresh_store, "top_edges_per_layer_pair", {"graph_id": graph.graph_id})
    fresh_store.query(
        "MATCH (s:GraphSummary) DETACH DELETE s WITH count(*) AS n "
        "MATCH (p:LayerPair) DETACH DELETE p",
        write=True,
    )
    assert fresh_store.graphs_without_summaries() == [graph.graph_id]
    for name, params in (
        ("top_edges_per_layer_pair", {"graph_id": graph.graph_id}),
        ("error_share_per_layer", {"graph_id": graph.graph_id}),
        ("feature_jaccard", {"graph_ids": []}),
    ):
        with pytest.raises(QueryError, match="circuit-atlas upgrade"):
            run_query(fresh_store, name, params)
    fresh_store.add_summaries(graph.graph_id)
    assert fresh_store.graphs_without_summaries() == []
    got = run_query(fresh_store, "top_edges_per_layer_pair", {"graph_id": graph.graph_id})
    assert_same(got, expected)
    # summaries of an older layout count as missing too
    fresh_store.query("MATCH (s:GraphSummary) SET s.version = 1", write=True)
    assert fresh_store.graphs_without_summaries() == [graph.graph_id]


def test_reingest_adds_missing_summaries_and_delete_takes_them(fresh_store: CircuitStore):
    graph = random_attribution_graph(2, n_layers=3, n_pos=2, density=0.5)
    fresh_store.write_graph(graph)
    fresh_store.query("MATCH (s:GraphSummary) DETACH DELETE s", write=True)
    assert fresh_store.write_graph(graph).status == "unchanged"
    assert fresh_store.graphs_without_summaries() == []
    fresh_store.delete_graph(graph.graph_id)
    left = fresh_store.query("MATCH (s) WHERE s:GraphSummary OR s:LayerPair RETURN count(s) AS n")
    assert left[0]["n"] == 0


def test_upgrade_command_adds_summaries(bolt_env):
    run_cli("ingest", str(bundled("dollar.json.gz")), env=bolt_env, check=True)
    run_cli("cypher", "MATCH (s:GraphSummary) DETACH DELETE s", "--write", env=bolt_env, check=True)
    refused = run_cli(
        "query", "error_share_per_layer", "--param", "graph_id=gemma-dollar", env=bolt_env
    )
    assert refused.returncode == 1 and "circuit-atlas upgrade" in refused.stderr
    upgraded = run_cli("upgrade", env=bolt_env, check=True)
    assert upgraded.stdout == "gemma-dollar: summaries added\n"
    assert run_cli("upgrade", env=bolt_env, check=True).stdout == "every graph is up to date\n"
    run_cli("query", "error_share_per_layer", "--param", "graph_id=gemma-dollar",
            env=bolt_env, check=True)  # fmt: skip


# --------------------------------------------------------------------------- in Python alone
def test_layer_pairs_keep_the_strongest_edges_with_key_ties():
    graph = tied_graph()
    rows = {(r["source_layer"], r["target_layer"]): r for r in layer_pair_rows(graph, kept=2)}
    a, c, d = "feature:0:0:1:", "feature:1:1:3:", "feature:1:0:4:"
    # layer 0 → 1: six edges of |w| 2 (two of them parallel) and one of 0.5; the two kept are
    # a's, a → d before a → c because d's key sorts first
    pair = rows[(0, 1)]
    assert pair["n_edges"] == 7
    keys = graph_summary(graph)["node_keys"]
    edges = zip(pair["sources"], pair["targets"], pair["weights"])
    assert [(keys[s], keys[t], w) for s, t, w in edges] == [
        (a, d, 2.0), (a, c, -2.0),
    ]  # fmt: skip
    assert rows[(-1, 0)]["n_edges"] == 4
    assert rows[(-1, 1)]["weights"] == [0.25]
    assert set(rows) == {(-1, 0), (-1, 1), (0, 1)}


def test_graph_summary_sums_and_codes():
    summary = graph_summary(tied_graph())
    assert summary["feature_codes"] == [1, 2, 2**32 + 3, 2**32 + 4]
    assert summary["wide_feature_codes"] == []
    assert graph_summary(wide_graph("w", (2**40, 3)))["wide_feature_codes"] == [f"0:{2**40}"]
    assert summary["layers"] == [0]
    assert summary["feature_weight"] == [12.0]
    assert summary["error_weight"] == [0.5]
