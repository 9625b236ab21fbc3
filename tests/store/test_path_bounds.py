"""The per-node path bounds that let strongest_paths prune exactly, on a hand-computed graph."""

from __future__ import annotations

import numpy as np
import pytest

from circuit_atlas.store import CircuitStore
from circuit_atlas.store.path_bounds import (
    MAX_PATH_EDGES,
    MAX_TARGET_BOUND_VALUES,
    TARGET_BOUND_BUDGET,
    path_bounds,
    target_suffix_bounds,
)

from helpers.graphs import build, feat, logit, tok

pytestmark = pytest.mark.backends("arcadedb", "neo4j")


def five_node_graph():
    """T0, T1 → A → B → L, with shortcuts T0 → L and A → L.

    prefix (best product from a token, ≤ i edges), by hand:
      A: 0, 3 (T1 → A), 3, …        B: 0, 0, 1.5 (T1 → A → B), …
      L: 0, 1 (T0 → L), 1 (T1 → A → L is 0.3), 6 (T1 → A → B → L), …
    suffix (best product of a walk starting here, ≤ j edges):
      T1: 1, 3, 3 (T1 → A → B is 1.5), 6 (… → L), …   A: 1, 1 (the empty walk), 2 (A → B → L)
    """
    nodes = {
        "T0": tok(0),
        "T1": tok(1),
        "A": feat(0, 1, 7),
        "B": feat(1, 1, 8),
        "L": logit(1, 99, 0.5),
    }
    edges = [
        ("T0", "A", 2.0),
        ("T1", "A", -3.0),
        ("A", "B", 0.5),
        ("B", "L", 4.0),
        ("T0", "L", 1.0),
        ("A", "L", -0.1),
    ]
    return build("bounds-by-hand", nodes, edges)


def row(*values: float) -> list[float]:
    """A bound row: the values given, then the last one repeated (bounds only grow)."""
    return [*values, *[values[-1]] * (MAX_PATH_EDGES - len(values))]


EXPECTED_PREFIX = {
    "T0": row(1),
    "T1": row(1),
    "A": row(0, 3),
    "B": row(0, 0, 1.5),
    "L": row(0, 1, 1, 6),
}
EXPECTED_SUFFIX = {
    "T0": row(1, 2, 2, 4),  # T0 → A → B → L: 2 · 0.5 · 4
    "T1": row(1, 3, 3, 6),
    "A": row(1, 1, 2),  # the empty walk (1) beats A → B (0.5)
    "B": row(1, 4),
    "L": row(1),
}


def test_path_bounds_by_hand():
    graph = five_node_graph()
    prefix, suffix = path_bounds(graph)
    names = graph.nodes["label"].tolist()
    assert {n: prefix[i].tolist() for i, n in enumerate(names)} == EXPECTED_PREFIX
    assert {n: suffix[i].tolist() for i, n in enumerate(names)} == EXPECTED_SUFFIX


def test_path_bounds_equal_a_brute_force_over_walks():
    """Max product over every walk of ≤ i edges, enumerated, on a graph with a cycle."""
    rng = np.random.default_rng(0)
    nodes = {"T": tok(0), **{f"F{i}": feat(0, 0, i) for i in range(5)}}
    names = list(nodes)
    edges = [
        (s, t, rng.normal() * 2) for s in names for t in names[1:] if s != t and rng.random() < 0.5
    ]
    graph = build("walks", nodes, edges)
    prefix, suffix = path_bounds(graph)

    def best_walks(start: str, length: int) -> dict[str, float]:
        return best_walk_products(edges, start, length)

    for j in range(MAX_PATH_EDGES):
        from_token = {}
        for length in range(j + 1):
            for node, product in best_walks("T", length).items():
                from_token[node] = max(from_token.get(node, 0.0), product)
        for i, name in enumerate(names):
            assert prefix[i, j] == pytest.approx(from_token.get(name, 0.0), rel=1e-12)
            starting = max(max(best_walks(name, n).values(), default=0.0) for n in range(j + 1))
            assert suffix[i, j] == pytest.approx(starting, rel=1e-12)


def best_walk_products(edges: list[tuple[str, str, float]], start: str, length: int) -> dict:
    """Best product of |w| over walks of exactly ``length`` edges from ``start``, per end node."""
    out: dict[str, list[tuple[str, float]]] = {}
    for s, t, w in edges:
        out.setdefault(s, []).append((t, abs(w)))
    frontier = {start: 1.0}
    for _ in range(length):
        step: dict[str, float] = {}
        for node, product in frontier.items():
            for nxt, w in out.get(node, []):
                step[nxt] = max(step.get(nxt, 0.0), product * w)
        frontier = step
    return frontier


def test_target_suffix_bounds_equal_a_brute_force_over_walks_to_each_logit():
    """Per logit, the best product over every walk of ≤ j edges that ends there, enumerated, on
    a graph with cycles (an ROI quotient graph has them) and a logit with an out-edge."""
    rng = np.random.default_rng(1)
    nodes = {
        "T": tok(0),
        **{f"F{i}": feat(0, 0, i) for i in range(5)},
        "L0": logit(0, 5, 0.6),
        "L1": logit(0, 6, 0.3),
    }
    names = list(nodes)
    edges = [
        (s, t, rng.normal() * 2) for s in names for t in names[1:] if s != t and rng.random() < 0.5
    ]
    graph = build("walks-to-logits", nodes, edges)
    computed = target_suffix_bounds(graph)
    assert computed is not None
    targets, bounds = computed
    assert [names[i] for i in targets] == ["L0", "L1"]
    for t, logit_name in enumerate(["L0", "L1"]):
        for i, name in enumerate(names):
            for j in range(MAX_PATH_EDGES):
                best = max(
                    best_walk_products(edges, name, n).get(logit_name, 0.0) for n in range(j + 1)
                )
                assert bounds[i, t * MAX_PATH_EDGES + j] == pytest.approx(best, rel=1e-12)


def test_target_suffix_bounds_are_left_out_where_they_would_cost_too_much():
    assert target_suffix_bounds(build("no-logit", {"T": tok(0), "F": feat(0, 0, 1)},
                                      [("T", "F", 1.0)])) is None  # fmt: skip
    nodes = {"T": tok(0), **{f"L{i}": logit(0, i, 0.1) for i in range(3)}}
    n_edges = TARGET_BOUND_BUDGET // 3 + 1
    graph = build("too-big", nodes, [("T", "L0", 1.0)])
    graph.edges = graph.edges.loc[[0] * n_edges].reset_index(drop=True)  # size is all it reads
    assert target_suffix_bounds(graph) is None
    many = MAX_TARGET_BOUND_VALUES // (2 * MAX_PATH_EDGES)  # nodes × 2 logits × 6 > the budget
    wide = {"T": tok(0), "L0": logit(0, 0, 0.5), "L1": logit(0, 1, 0.5),
            **{f"F{i}": feat(0, 0, i) for i in range(many)}}  # fmt: skip
    assert target_suffix_bounds(build("wide", wide, [("T", "L0", 1.0)])) is None
    del wide["F0"], wide["F1"], wide["F2"]
    assert target_suffix_bounds(build("narrow", wide, [("T", "L0", 1.0)])) is not None


@pytest.mark.parametrize("force_bolt", [False, True], ids=["bulk path", "Bolt path"])
def test_every_stored_node_carries_its_bounds(
    fresh_store: CircuitStore, backend: str, force_bolt: bool
):
    graph = five_node_graph()
    bulk = backend == "arcadedb" and not force_bolt  # Neo4j has no bulk path: Bolt both times
    assert fresh_store.write_graph(graph, force_bolt=force_bolt).path == (
        "bulk" if bulk else "bolt"
    )
    rows = fresh_store.query(
        "MATCH (n:Node {graph_id: $g}) RETURN n.label AS name, n.prefix_bound AS prefix, "
        "n.suffix_bound AS suffix",
        {"g": graph.graph_id},
    )
    assert {r["name"]: r["prefix"] for r in rows} == EXPECTED_PREFIX
    assert {r["name"]: r["suffix"] for r in rows} == EXPECTED_SUFFIX
    targets = fresh_store.query(
        "MATCH (n:Node {graph_id: $g}) WHERE n.target_index IS NOT NULL "
        "RETURN n.label AS name, n.target_index AS index, n.target_suffix_bound AS bound",
        {"g": graph.graph_id},
    )
    # L is the only logit: index 0; its bound to itself is 1 at every length.
    assert [(r["name"], r["index"], r["bound"][:MAX_PATH_EDGES]) for r in targets] == [
        ("L", 0, [1.0] * MAX_PATH_EDGES)
    ]
    # Derived, not part of the graph: reading it back gives the nodes table that was written.
    read_back = fresh_store.read_graph(graph.graph_id).nodes.columns
    assert not {"prefix_bound", "target_suffix_bound", "target_index"} & set(read_back)
