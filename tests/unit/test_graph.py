"""CircuitGraph: typed identity, validation, orientation and conversions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.graph import CircuitGraph, GraphMetadata, NodeKey, NodeKind


def tiny_graph(weights=(0.5, -2.0, 1.5)) -> CircuitGraph:
    nodes = pd.DataFrame(
        [
            {"kind": "embedding", "pos": 0, "token": "a"},
            {"kind": "feature", "layer": 0, "pos": 0, "feature": 7, "activation": 1.25},
            {"kind": "error", "layer": 0, "pos": 0},
            {"kind": "logit", "pos": 0, "feature": 42, "token_prob": 0.9},
        ]
    )
    edges = pd.DataFrame({"source": [0, 1, 2], "target": [1, 3, 3], "weight": list(weights)})
    return CircuitGraph(nodes, edges, GraphMetadata(graph_id="tiny", model="toy"))


def test_node_keys_cannot_collide_like_string_ids():
    # "0_2_1" named both of these nodes in a real export; typed keys keep them apart.
    feature = NodeKey("feature", layer=0, pos=1, feature=2)
    error = NodeKey("error", layer=2, pos=1)
    assert feature != error
    assert feature.encode() != error.encode()
    assert NodeKey.decode(feature.encode()) == feature
    assert NodeKey.decode(error.encode()) == error


def test_adjacency_is_target_by_source():
    graph = tiny_graph()
    a = graph.adjacency().toarray()
    assert a[1, 0] == 0.5  # embedding (col 0) -> feature (row 1)
    assert a[3, 1] == -2.0 and a[3, 2] == 1.5
    assert a[0].sum() == 0  # nothing flows into the embedding


def test_round_trips_through_scipy_dataframes_and_networkx():
    graph = tiny_graph()
    again = CircuitGraph.from_scipy(graph.adjacency(), graph.nodes, graph.metadata)
    assert again.content_hash() == graph.content_hash()
    nodes, edges = graph.to_dataframes()
    assert (
        CircuitGraph.from_dataframes(nodes, edges, graph.metadata).content_hash()
        == graph.content_hash()
    )
    by_key = edges.drop(columns=["source", "target"])
    assert (
        CircuitGraph.from_dataframes(nodes, by_key, graph.metadata).content_hash()
        == graph.content_hash()
    )
    nxg = graph.to_networkx()
    assert nxg.number_of_edges() == 3
    assert nxg[NodeKey("feature", 0, 0, 7)][NodeKey("logit", None, 0, 42)][""]["weight"] == -2.0
    assert CircuitGraph.from_networkx(nxg).content_hash() == graph.content_hash()


def test_parallel_channels_are_distinct_edges():
    nodes = pd.DataFrame([{"kind": "input"}, {"kind": "attention_head", "layer": 0, "head": 1}])
    edges = pd.DataFrame(
        {"source": [0, 0], "target": [1, 1], "weight": [1.0, 2.0], "channel": ["q", "k"]}
    )
    graph = CircuitGraph(nodes, edges, GraphMetadata(graph_id="qk"))
    assert graph.adjacency()[1, 0] == 3.0
    assert graph.adjacency("k")[1, 0] == 2.0


@pytest.mark.parametrize(
    "bad, message",
    [
        (float("nan"), "non-finite weight"),
        (float("inf"), "non-finite weight"),
    ],
)
def test_non_finite_weights_are_rejected(bad, message):
    with pytest.raises(InvalidGraphError, match=message):
        tiny_graph(weights=(0.5, bad, 1.0))


def test_the_first_repeated_edge_is_named_and_channels_keep_parallel_edges_apart():
    good = tiny_graph()
    edges = pd.DataFrame(
        {"source": [0, 2, 0, 2, 0], "target": [1, 3, 2, 3, 1], "weight": [1.0] * 5,
         "channel": ["", "a", "", "a", "b"]}
    )  # fmt: skip
    with pytest.raises(InvalidGraphError, match=r"more than one edge 2->3 in channel 'a'"):
        CircuitGraph(good.nodes, edges, good.metadata)
    parallel = edges.iloc[[0, 1, 2, 4]]  # 0->1 twice, in channels '' and 'b'
    assert CircuitGraph(good.nodes, parallel, good.metadata).n_edges == 4


def test_duplicate_identity_unknown_endpoint_and_duplicate_edge_are_rejected():
    nodes = pd.DataFrame([{"kind": "error", "layer": 0, "pos": 0}] * 2)
    with pytest.raises(InvalidGraphError, match="duplicate node identity"):
        CircuitGraph(
            nodes, pd.DataFrame(columns=["source", "target", "weight"]), GraphMetadata(graph_id="x")
        )
    good = tiny_graph()
    with pytest.raises(InvalidGraphError, match="outside the 4 nodes"):
        CircuitGraph(
            good.nodes, pd.DataFrame({"source": [0], "target": [9], "weight": [1.0]}), good.metadata
        )
    with pytest.raises(InvalidGraphError, match="more than one edge"):
        CircuitGraph(
            good.nodes,
            pd.DataFrame({"source": [0, 0], "target": [1, 1], "weight": [1.0, 2.0]}),
            good.metadata,
        )


def test_kind_specific_fields_are_checked():
    with pytest.raises(InvalidGraphError, match="needs 'feature'"):
        CircuitGraph(
            pd.DataFrame([{"kind": "feature", "layer": 0, "pos": 0}]),
            pd.DataFrame(columns=["source", "target", "weight"]),
            GraphMetadata(graph_id="x"),
        )
    with pytest.raises(InvalidGraphError, match="unknown node kind"):
        CircuitGraph(
            pd.DataFrame([{"kind": "neuron"}]),
            pd.DataFrame(columns=["source", "target", "weight"]),
            GraphMetadata(graph_id="x"),
        )


def test_kind_rules_name_the_first_offending_row_of_the_first_broken_rule():
    """Rules are checked kind by kind in a fixed order, and the row named is the first of that
    kind breaking the rule, counted in the whole table (rows of other kinds come between)."""
    rows = [
        {"kind": "feature", "layer": 0, "pos": 0, "feature": 1},
        {"kind": "error", "layer": 0, "pos": 0, "feature": 3},  # must not have a feature
        {"kind": "feature", "layer": 0, "pos": 1},  # needs a feature
        {"kind": "error", "layer": 1, "pos": 0, "feature": 4},
        {"kind": "embedding", "pos": 0, "head": 2},  # must not have a head
    ]

    def refusal(table: list[dict]) -> str:
        with pytest.raises(InvalidGraphError) as caught:
            CircuitGraph(
                pd.DataFrame(table),
                pd.DataFrame(columns=["source", "target", "weight"]),
                GraphMetadata(graph_id="x"),
            )
        return str(caught.value)

    assert refusal(rows) == "graph 'x': node row 4 of kind 'embedding' must not have 'head'"
    assert refusal(rows[:4]) == "graph 'x': node row 2 of kind 'feature' needs 'feature'"
    assert refusal(rows[:2] + rows[3:4]) == (
        "graph 'x': node row 1 of kind 'error' must not have 'feature'"
    )


def test_shape_mismatch_is_rejected():
    graph = tiny_graph()
    with pytest.raises(InvalidGraphError, match="does not match"):
        CircuitGraph.from_scipy(sp.csr_matrix(np.zeros((3, 3))), graph.nodes, graph.metadata)


def test_content_hash_ignores_row_order():
    graph = tiny_graph()
    shuffled = CircuitGraph(graph.nodes, graph.edges.iloc[::-1], graph.metadata)
    assert shuffled.content_hash() == graph.content_hash()
    assert NodeKind.FEATURE.value in graph.summary()
