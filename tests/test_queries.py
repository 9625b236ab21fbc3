"""The named query library against the real default backend and pure-Python references.

Path queries are checked exactly: the same paths, in the same order, with the same products, as
an enumeration in Python over the graph as stored; neighbourhoods as networkx reachability.
"""

from __future__ import annotations

import math

import networkx as nx
import pandas as pd
import pytest
from score_graphs import random_attribution_graph

from circuit_atlas.analysis.roi.stored import roi_stored
from circuit_atlas.analysis.score_store import score_stored_graph
from circuit_atlas.errors import CypherError
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest import load_graph
from circuit_atlas.queries.library import (
    QueryError,
    get_query,
    library,
    parse_query,
    run_query,
)
from circuit_atlas.store import CircuitStore

from conftest import bundled, error_lines, run_cli


# --------------------------------------------------------------------------- references
def stored_edges(store: CircuitStore, graph: CircuitGraph) -> list[tuple[str, str, float]]:
    """(source key, target key, weight) exactly as the database returns them."""
    stored = store.read_graph(graph.graph_id)
    keys = [k.encode() for k in stored.keys()]
    e = stored.edges
    return [(keys[s], keys[t], w) for s, t, w in zip(e["source"], e["target"], e["weight"])]


def reference_paths(
    edges: list[tuple[str, str, float]],
    kinds: dict[str, str],
    target: str,
    max_length: int,
    min_abs_weight: float = 0.0,
    source: str | None = None,
) -> list[tuple[list[str], list[float], float]]:
    """Every path into ``target`` of ≤ max_length strong-enough edges, ranked like the query."""
    incoming: dict[str, list[tuple[str, float]]] = {}
    for s, t, w in edges:
        if abs(w) >= min_abs_weight:
            incoming.setdefault(t, []).append((s, w))
    found = []

    def walk(node: str, suffix_nodes: list[str], suffix_weights: list[float]) -> None:
        if len(suffix_weights) >= max_length:
            return
        for s, w in incoming.get(node, []):
            nodes, weights = [s, *suffix_nodes], [w, *suffix_weights]
            starts = kinds[s] == "embedding" if source is None else s == source
            if starts:
                product = 1.0
                for value in weights:
                    product *= abs(value)
                found.append((nodes, weights, product))
            walk(s, nodes, weights)

    walk(target, [target], [])
    return sorted(found, key=lambda p: (-p[2], p[0]))


def node_kinds(graph: CircuitGraph) -> dict[str, str]:
    return {k.encode(): k.kind for k in graph.keys()}


@pytest.fixture
def dollar(fresh_store: CircuitStore) -> tuple[CircuitStore, CircuitGraph]:
    graph = load_graph(bundled("dollar.json.gz"))
    fresh_store.write_graph(graph)
    return fresh_store, graph


# --------------------------------------------------------------------------- path queries
@pytest.mark.parametrize("seed", range(3))
def test_strongest_paths_match_the_reference_on_random_dags(fresh_store: CircuitStore, seed):
    graph = random_attribution_graph(seed, n_layers=3, n_pos=3, density=0.6)
    fresh_store.write_graph(graph)
    edges, kinds = stored_edges(fresh_store, graph), node_kinds(graph)
    logits = [k for k, kind in kinds.items() if kind == "logit"]
    for target, max_length, threshold in [(logits[0], 3, 0.0), (logits[1], 4, 0.5)]:
        expected = reference_paths(edges, kinds, target, max_length, threshold)[:25]
        got = run_query(
            fresh_store,
            "strongest_paths",
            {
                "graph_id": graph.graph_id,
                "target_key": target,
                "max_length": max_length,
                "min_abs_weight": threshold,
                "k": 25,
            },
        )
        assert len(expected) > 5
        assert got["nodes"].tolist() == [p[0] for p in expected]
        assert got["weights"].tolist() == [p[1] for p in expected]
        assert got["product"].tolist() == [p[2] for p in expected]
        for log_sum, (_, weights, _) in zip(got["log_sum"], expected):
            assert log_sum == pytest.approx(sum(math.log(abs(w)) for w in weights), abs=1e-12)


def test_strongest_paths_on_a_real_graph_and_from_a_given_source(dollar):
    store, graph = dollar
    edges, kinds = stored_edges(store, graph), node_kinds(graph)
    target = "logit:27:6:64091:"
    expected = reference_paths(edges, kinds, target, 3, min_abs_weight=2.0)[:10]
    got = run_query(
        store,
        "strongest_paths",
        {"graph_id": graph.graph_id, "target_key": target, "min_abs_weight": 2.0},
    )
    assert got["nodes"].tolist() == [p[0] for p in expected]
    assert got["product"].tolist() == [p[2] for p in expected]
    source = "feature:18:6:10102:"
    expected = reference_paths(edges, kinds, target, 2, source=source)[:5]
    got = run_query(
        store,
        "strongest_paths",
        {"graph_id": graph.graph_id, "target_key": target, "source_key": source, "k": 5,
         "max_length": 2},
    )  # fmt: skip
    assert got["nodes"].tolist() == [p[0] for p in expected]
    assert all(nodes[0] == source for nodes in got["nodes"])


@pytest.mark.parametrize("direction", ["upstream", "downstream"])
def test_neighbourhoods_match_networkx(dollar, direction):
    store, graph = dollar
    strong = nx.DiGraph()
    strong.add_nodes_from(k.encode() for k in graph.keys())
    strong.add_edges_from((s, t) for s, t, w in stored_edges(store, graph) if abs(w) >= 3.0)
    anchor = "feature:20:6:5796:"
    walk = strong.reverse() if direction == "upstream" else strong
    hops = nx.single_source_shortest_path_length(walk, anchor, cutoff=2)
    expected = sorted(((h, k) for k, h in hops.items() if k != anchor))
    got = run_query(
        store,
        direction,
        {"graph_id": graph.graph_id, "node_key": anchor, "min_abs_weight": 3.0, "hops": 2},
    )
    assert list(zip(got["hops"], got["node_key"])) == expected
    assert len(expected) > 3


# --------------------------------------------------------------------------- other queries
def test_top_edges_and_error_share_match_pandas(dollar):
    store, graph = dollar
    nodes, edges = graph.to_dataframes()
    layer = nodes["layer"].fillna(-1).astype(int).to_numpy()
    stored = pd.DataFrame(stored_edges(store, graph), columns=["source", "target", "weight"])
    key_layer = dict(zip(nodes["node_key"], layer))
    stored["source_layer"] = stored["source"].map(key_layer)
    stored["target_layer"] = stored["target"].map(key_layer)
    stored["strength"] = stored["weight"].abs()
    ranked = stored.sort_values(["strength", "source", "target"], ascending=[False, True, True])
    expected = ranked.groupby(["source_layer", "target_layer"], sort=True).head(2)
    expected = expected.sort_values(["source_layer", "target_layer", "strength"],
                                    ascending=[True, True, False])  # fmt: skip
    got = run_query(store, "top_edges_per_layer_pair", {"graph_id": graph.graph_id, "k": 2})
    assert got["source"].tolist() == expected["source"].tolist()
    assert got["weight"].tolist() == expected["weight"].tolist()

    kinds = dict(zip(nodes["node_key"], nodes["kind"]))
    stored["kind"] = stored["source"].map(kinds)
    sent = stored[stored["kind"].isin(["error", "feature"])]
    per = sent.groupby(["source_layer", "kind"])["strength"].sum().unstack(fill_value=0.0)
    share = (per["error"] / (per["error"] + per["feature"])).tolist()
    got = run_query(store, "error_share_per_layer", {"graph_id": graph.graph_id})
    assert got["layer"].tolist() == per.index.tolist()
    assert got["error_share"].tolist() == pytest.approx(share, abs=1e-9)


def test_every_named_query_runs_and_returns_its_declared_columns(dollar):
    store, graph = dollar
    nobel = load_graph(bundled("nobel-clt.json.gz"))
    store.write_graph(nobel)
    score_stored_graph(store, graph.graph_id, pin_top=[5])
    run_id = roi_stored(store, [graph.graph_id], "louvain").result.run_id
    arguments = {
        "strongest_paths": {"graph_id": graph.graph_id, "target_key": "logit:27:6:64091:"},
        "upstream": {"graph_id": graph.graph_id, "node_key": "feature:20:6:5796:"},
        "downstream": {"graph_id": graph.graph_id, "node_key": "feature:18:6:10102:"},
        "top_edges_per_layer_pair": {"graph_id": graph.graph_id},
        "nodes_by_influence": {"graph_id": graph.graph_id, "kind": "feature"},
        "error_share_per_layer": {"graph_id": graph.graph_id},
        "shared_features": {"graph_ids": [], "min_graphs": 1},
        "graphs_with_feature": {"layer": 18, "feature": 10102},
        "graphs_with_motif": {"a_layer": 18, "a_feature": 10102, "b_layer": 20, "b_feature": 5796},
        "subgraph_scores": {"name": "top 5"},
        "feature_jaccard": {"graph_ids": []},
        "roi_members": {"run_id": run_id},
        "roi_paths": {"run_id": run_id, "target_key": "logit:27:6:64091:"},
    }
    assert set(arguments) == set(library())
    for name, values in arguments.items():
        frame = run_query(store, name, values)
        assert list(frame.columns) == list(get_query(name).columns), name
        assert len(frame) > 0, name
    top = run_query(store, "nodes_by_influence", {"graph_id": graph.graph_id, "kind": "feature"})
    assert top["influence"].is_monotonic_decreasing
    scores = run_query(store, "subgraph_scores", {})
    assert scores["pinned"].tolist() == [5]


def test_every_library_query_is_read_only_bounded_and_documented():
    for query in library().values():
        assert query.purpose and query.columns, query.name
        assert "LIMIT $" in query.body, query.name
        for parameter in query.parameters:
            assert parameter.doc, (query.name, parameter.name)


# --------------------------------------------------------------------------- bad input
def test_bad_requests_name_what_is_expected(dollar):
    store, graph = dollar
    with pytest.raises(QueryError, match="no query named 'nope'; known queries: downstream"):
        run_query(store, "nope")
    with pytest.raises(QueryError, match="needs parameter 'target_key'; expected: graph_id"):
        run_query(store, "strongest_paths", {"graph_id": graph.graph_id})
    with pytest.raises(QueryError, match="'k' must be int"):
        run_query(store, "strongest_paths", {"graph_id": "g", "target_key": "t", "k": "ten"})
    with pytest.raises(QueryError, match="outside 1..6"):
        run_query(store, "strongest_paths", {"graph_id": "g", "target_key": "t", "max_length": 50})
    with pytest.raises(QueryError, match="has no parameter 'depth'"):
        run_query(store, "upstream", {"graph_id": "g", "node_key": "n", "depth": 3})


def test_a_write_clause_in_a_query_file_is_refused():
    text = "// Sneaky.\n//\n// @param graph_id: string — the graph\n// @columns n\n"
    with pytest.raises(CypherError, match="read-only"):
        parse_query("sneaky", text + "MATCH (n:Node {graph_id: $graph_id}) DETACH DELETE n")


def test_query_command(bolt_env):
    run_cli("ingest", str(bundled("dollar.json.gz")), env=bolt_env, check=True)
    listed = run_cli("query", "--list", "--format", "csv", env=bolt_env, check=True)
    assert "strongest_paths," in listed.stdout
    paths = run_cli(
        "query", "strongest_paths", "--param", "graph_id=gemma-dollar",
        "--param", "target_key=logit:27:6:64091:", "--param", "k=2", "--format", "json",
        env=bolt_env, check=True,
    )  # fmt: skip
    rows = pd.read_json(pd.io.common.StringIO(paths.stdout))
    assert rows["nodes"][0] == [
        "embedding::3::", "feature:18:6:10102:", "feature:20:6:5796:", "logit:27:6:64091:",
    ]  # fmt: skip
    bad = run_cli("query", "strongest_paths", "--param", "graph_id=x", env=bolt_env)
    assert bad.returncode == 1
    assert error_lines(bad)[0].startswith("error: query 'strongest_paths' needs parameter")
    described = run_cli("query", "upstream", "--describe", env=bolt_env, check=True)
    assert "--param hops (int, default 2, 1..5)" in described.stdout
