"""``CircuitStore.write_graphs``: many graphs in one bulk load, each still atomic and exact."""

from __future__ import annotations

import pytest

from circuit_atlas.errors import GraphConflict
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.store import CircuitStore
from circuit_atlas.store import circuit_store as circuit_store_module
from circuit_atlas.store.summaries import graph_summary

from helpers.graphs import assert_same_graph, random_attribution_graph

pytestmark = pytest.mark.backends("arcadedb", "neo4j")


def renamed(graph: CircuitGraph, graph_id: str) -> CircuitGraph:
    metadata = graph.metadata.model_copy(update={"graph_id": graph_id})
    return CircuitGraph(graph.nodes, graph.edges, metadata)


def corpus(n: int) -> list[CircuitGraph]:
    """Small graphs whose feature indices recur, so features are shared across the batch."""
    graphs = (random_attribution_graph(i, n_layers=3, n_pos=3, density=0.5) for i in range(n))
    return [renamed(graph, f"g{i}") for i, graph in enumerate(graphs)]


def test_a_batch_reads_back_graph_by_graph(fresh_store: CircuitStore, monkeypatch):
    monkeypatch.setattr(
        circuit_store_module, "BATCH_ROWS", 400
    )  # several loads, several graphs each
    graphs = corpus(7)
    heard = []
    results = fresh_store.write_graphs(graphs, on_result=heard.append)
    assert [r.graph_id for r in results] == [r.graph_id for r in heard]
    assert sorted(r.graph_id for r in results) == [g.graph_id for g in graphs]
    assert {r.status for r in results} == {"created"}
    if fresh_store.has_bulk_path:
        assert {r.path for r in results} == {"bulk"}
    for graph in graphs:
        assert_same_graph(fresh_store.read_graph(graph.graph_id), graph)
        stored = fresh_store.query(
            "MATCH (s:GraphSummary {graph_id: $g}) RETURN s.feature_codes AS codes",
            {"g": graph.graph_id},
        )
        assert stored[0]["codes"] == graph_summary(graph)["feature_codes"]
    # again: every graph unchanged, nothing written twice
    again = fresh_store.write_graphs(graphs)
    assert {r.status for r in again} == {"unchanged"}
    nodes = fresh_store.query("MATCH (n:Node) RETURN count(n) AS n")[0]["n"]
    assert nodes == sum(g.n_nodes for g in graphs)


def test_a_refused_graph_leaves_none_of_its_batch(fresh_store: CircuitStore):
    graphs = corpus(4)
    fresh_store.write_graph(renamed(random_attribution_graph(99), "g2"))  # other content
    with pytest.raises(GraphConflict):
        fresh_store.write_graphs(graphs)
    listed = fresh_store.query("MATCH (g:Graph) RETURN g.graph_id AS gid ORDER BY gid")
    assert [row["gid"] for row in listed] == ["g2"]
    nodes = fresh_store.query("MATCH (n:Node) RETURN count(n) AS n")[0]["n"]
    assert nodes == random_attribution_graph(99).n_nodes


def test_shared_features_are_linked_in_every_graph_of_a_batch(fresh_store: CircuitStore):
    graphs = corpus(3)
    fresh_store.write_graphs(graphs)
    for graph in graphs:
        linked = fresh_store.query(
            "MATCH (n:Node {graph_id: $g})-[:INSTANCE_OF]->(:Feature) RETURN count(n) AS n",
            {"g": graph.graph_id},
        )[0]["n"]
        assert linked == int((graph.nodes["kind"] == "feature").sum())
