"""Three-node motif census, null models, enrichment and report: pure computation, no server.

The census is checked against networkx's triadic census (Batagelj–Mrvar, an independent
algorithm) on digraphs with reciprocal edges and cycles, as null models produce them, and on
DAGs; the null models against what each promises to keep, and the swap chain against an
enumeration of every graph it may reach.
"""

from __future__ import annotations

import itertools
import math
import re
import tracemalloc
from collections import Counter

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.stats import chisquare

from circuit_atlas.analysis.motifs.census import MOTIFS, TRIAD_CODES, binary_edges, motif_census
from circuit_atlas.analysis.motifs.enrichment import (
    MotifEnrichment,
    adjacency_enrichment,
    corpus_enrichment,
    motif_enrichment,
    summarise,
)
from circuit_atlas.analysis.motifs.null_models import (
    NULL_MODELS,
    edge_list,
    layer_position,
    node_classes,
    swap_targets,
)
from circuit_atlas.analysis.motifs.report import render_motif_report
from circuit_atlas.graph import CircuitGraph, GraphMetadata

from helpers.graphs import build, err, feat, logit, tok


def matrix(edges: list[tuple[int, int]], n: int) -> sp.csr_matrix:
    """``M[source, target] = 1`` for each (source, target)."""
    rows, cols = zip(*edges) if edges else ((), ())
    return sp.csr_matrix((np.ones(len(edges), np.int64), (rows, cols)), shape=(n, n))


def networkx_counts(adjacency: sp.csr_matrix) -> dict[str, int]:
    census = nx.triadic_census(nx.DiGraph(adjacency.toarray()))
    return {motif: census[code] for motif, code in TRIAD_CODES.items()}


def random_digraph(rng: np.random.Generator, dag: bool) -> sp.csr_matrix:
    n = int(rng.integers(3, 30))
    dense = (rng.random((n, n)) < rng.uniform(0.05, 0.5)).astype(np.int64)
    np.fill_diagonal(dense, 0)
    return sp.csr_matrix(np.triu(dense, 1) if dag else dense)


def layered_dag(rng: np.random.Generator, n_layers: int = 6, width: int = 12) -> tuple:
    """A random DAG whose edges run from earlier to strictly later layers, its classes = layers."""
    n = n_layers * width
    layer = np.repeat(np.arange(n_layers), width)
    later = layer[:, None] < layer[None, :]
    dense = (later & (rng.random((n, n)) < 0.15)).astype(np.int64)
    return sp.csr_matrix(dense), layer


def class_pair_counts(adjacency: sp.csr_matrix, classes: np.ndarray) -> np.ndarray:
    onehot = sp.csr_matrix(np.eye(classes.max() + 1, dtype=np.int64)[classes])
    return (onehot.T @ adjacency @ onehot).toarray()


def degrees(adjacency: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(adjacency.sum(axis=1)).ravel(), np.asarray(adjacency.sum(axis=0)).ravel()


# ---------------------------------------------------------------- census


def test_census_equals_networkx_on_digraphs_with_reciprocal_edges_and_cycles():
    rng = np.random.default_rng(0)
    reciprocal = cycles = 0
    for _ in range(150):
        adjacency = random_digraph(rng, dag=False)
        counts = motif_census(adjacency)
        assert counts == networkx_counts(adjacency)
        reciprocal += adjacency.multiply(adjacency.T).nnz
        cycles += counts["cycle"]
    assert reciprocal > 0 and cycles > 0  # the cases the general formulas are for did occur


def test_census_equals_networkx_on_dags_and_rewired_dags():
    rng = np.random.default_rng(1)
    for _ in range(100):
        adjacency = random_digraph(rng, dag=True)
        counts = motif_census(adjacency)
        assert counts["cycle"] == 0
        assert counts == networkx_counts(adjacency)
    adjacency, layer = layered_dag(rng)
    for name, model in NULL_MODELS.items():
        rewired = model(adjacency, layer, np.random.default_rng(2))
        assert motif_census(rewired) == networkx_counts(rewired), name


@pytest.mark.parametrize(
    ("edges", "n", "expected"),
    [
        ([(0, 1), (1, 2), (0, 2)], 3, {"feed_forward_loop": 1}),
        ([(0, 1), (1, 2)], 3, {"chain": 1}),
        ([(0, 1), (1, 2), (2, 3)], 4, {"chain": 2}),
        ([(0, 1), (0, 2), (0, 3), (0, 4)], 5, {"fan_out": 6}),
        ([(1, 0), (2, 0), (3, 0), (4, 0)], 5, {"fan_in": 6}),
        ([(0, 1), (1, 2), (2, 0)], 3, {"cycle": 1}),
        ([(0, 1), (1, 0), (1, 2)], 3, {}),  # 111U: a reciprocal pair is in none of the five
        ([(0, 1), (1, 0), (0, 2), (1, 2)], 3, {}),  # 120D
        ([(0, 1), (1, 2), (0, 2), (2, 3)], 4, {"feed_forward_loop": 1, "chain": 2}),
        ([(0, 2), (1, 2), (2, 3), (2, 4)], 5, {"fan_in": 1, "fan_out": 1, "chain": 4}),
        ([], 4, {}),
    ],
)
def test_hand_counted_graphs(edges: list[tuple[int, int]], n: int, expected: dict[str, int]):
    assert motif_census(matrix(edges, n)) == {motif: expected.get(motif, 0) for motif in MOTIFS}


def test_census_ignores_weights_duplicates_and_self_loops():
    weighted = sp.csr_matrix(np.array([[5, -2, 0.5], [0, 3, 1e-9], [0, 0, 0]]))
    assert motif_census(weighted) == motif_census(matrix([(0, 1), (1, 2), (0, 2)], 3))


def test_binary_edges_transposes_merges_channels_and_thresholds():
    nodes = pd.DataFrame([tok(0), feat(0, 0, 7), feat(1, 0, 8)])
    edges = pd.DataFrame(
        {
            "source": [0, 0, 0, 1],
            "target": [1, 1, 2, 2],
            "weight": [0.5, -0.45, 0.0, -2.0],
            "channel": ["q", "k", "", ""],
        }
    )
    graph = CircuitGraph(nodes, edges, GraphMetadata(graph_id="g", model="toy"))
    every = binary_edges(graph)
    assert every.dtype == np.int64
    assert every.toarray().tolist() == [[0, 1, 1], [0, 0, 1], [0, 0, 0]]  # M[source, target]
    # the two channels of 0→1 count once; with a threshold their net weight 0.05 is what counts
    assert binary_edges(graph, 0.04).toarray().tolist() == [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    assert binary_edges(graph, 0.05).toarray().tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 0]]


def test_a_million_edges_are_counted_without_a_dense_matrix():
    rng = np.random.default_rng(3)
    n, m = 50_000, 1_000_000
    adjacency = sp.csr_matrix(
        (np.ones(m, np.int64), (rng.integers(0, n, m), rng.integers(0, n, m))), shape=(n, n)
    )
    tracemalloc.start()
    try:
        counts = motif_census(adjacency)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 30  # a dense n × n matrix would need 2.5 GB even as bytes
    assert counts["chain"] > 0 and all(v >= 0 for v in counts.values())


# ---------------------------------------------------------------- null models


@pytest.mark.parametrize("name", sorted(NULL_MODELS))
def test_every_null_model_gives_a_simple_digraph_with_as_many_edges(name: str):
    adjacency, layer = layered_dag(np.random.default_rng(4))
    rewired = NULL_MODELS[name](adjacency, layer, np.random.default_rng(5))
    assert rewired.shape == adjacency.shape and rewired.dtype == np.int64
    assert rewired.nnz == adjacency.nnz and set(rewired.data.tolist()) == {1}
    assert rewired.diagonal().sum() == 0
    assert (rewired != adjacency).nnz > 0
    again = NULL_MODELS[name](adjacency, layer, np.random.default_rng(5))
    assert (again != rewired).nnz == 0  # the same generator state gives the same graph


@pytest.mark.parametrize("name", ["degree", "degree-layer-position"])
def test_swap_null_models_keep_every_in_and_out_degree(name: str):
    rng = np.random.default_rng(6)
    for adjacency in [layered_dag(rng)[0], random_digraph(rng, dag=False), matrix([], 5)]:
        classes = rng.integers(0, 3, adjacency.shape[0])
        rewired = NULL_MODELS[name](adjacency, classes, rng)
        for kept, original in zip(degrees(rewired), degrees(adjacency)):
            np.testing.assert_array_equal(kept, original)


@pytest.mark.parametrize("name", ["layer-position", "degree-layer-position"])
def test_class_null_models_keep_the_edges_between_every_pair_of_classes(name: str):
    rng = np.random.default_rng(7)
    adjacency, layer = layered_dag(rng)
    mixed = rng.integers(0, 4, adjacency.shape[0])  # classes that share edges in both directions
    for classes in (layer, mixed):
        rewired = NULL_MODELS[name](adjacency, classes, rng)
        expected = class_pair_counts(adjacency, classes)
        np.testing.assert_array_equal(class_pair_counts(rewired, classes), expected)


def graphs_with_degrees(row_sums: tuple[int, ...], col_sums: tuple[int, ...]) -> set[tuple]:
    """Every 0/1 matrix with these row and column sums, flattened."""
    shape = (len(row_sums), len(col_sums))
    found = set()
    for bits in itertools.product([0, 1], repeat=shape[0] * shape[1]):
        block = np.array(bits).reshape(shape)
        if tuple(block.sum(1)) == row_sums and tuple(block.sum(0)) == col_sums:
            found.add(bits)
    return found


# Sources 0–3 → targets 4–7, degrees (2, 2, 1, 1) on both sides: 34 such graphs exist.
SOURCE = np.array([0, 0, 1, 1, 2, 3])
TARGET = np.array([4, 5, 4, 5, 6, 7])


def block_of(target: np.ndarray) -> tuple[int, ...]:
    block = np.zeros((4, 4), dtype=np.int64)
    block[SOURCE, target - 4] = 1
    return tuple(block.ravel().tolist())


def test_the_swap_chain_is_reversible_so_it_visits_every_graph_equally_often():
    """The stationary distribution is uniform. Refusing only the swaps that collide on the
    edges they make (not reversible) fails this test with p ≈ 1e-33."""
    every = graphs_with_degrees((2, 2, 1, 1), (2, 2, 1, 1))
    assert len(every) == 34
    rng = np.random.default_rng(8)
    groups = np.zeros(len(SOURCE), dtype=np.int64)
    target, seen = TARGET, Counter()
    for _ in range(3_400):
        target = swap_targets(SOURCE, target, groups, 8, rng, n_rounds=10)[0]
        seen[block_of(target)] += 1
    assert set(seen) == every
    assert chisquare([seen[state] for state in sorted(every)]).pvalue > 1e-3


def test_degree_null_samples_are_uniform_from_the_observed_graph():
    every = graphs_with_degrees((2, 2, 1, 1), (2, 2, 1, 1))
    adjacency = matrix(list(zip(SOURCE.tolist(), TARGET.tolist())), 8)
    rng = np.random.default_rng(9)
    seen = Counter()
    for _ in range(1_700):
        rewired = NULL_MODELS["degree"](adjacency, np.zeros(8, np.int64), rng).tocoo()
        seen[block_of(rewired.col[np.argsort(rewired.row, kind="stable")])] += 1
    assert set(seen) == every
    assert chisquare([seen[state] for state in sorted(every)]).pvalue > 1e-3


@pytest.mark.parametrize("n_edges", [2, 3])  # a sparse block (rejection), a dense one (ranking)
def test_layer_position_places_a_blocks_edges_uniformly(n_edges: int):
    """Classes {0, 1} → {2, 3, 4}: the block has 6 cells, so C(6, k) placements."""
    classes = np.array([0, 0, 1, 1, 1])
    cells = [(s, t) for s in (0, 1) for t in (2, 3, 4)]
    adjacency = matrix(cells[:n_edges], 5)
    rng = np.random.default_rng(9)
    seen = Counter(
        tuple(sorted(zip(*edge_list(layer_position(adjacency, classes, rng)))))
        for _ in range(1_500)
    )
    assert len(seen) == math.comb(6, n_edges)
    assert chisquare(list(seen.values())).pvalue > 1e-3


def test_erdos_renyi_places_edges_anywhere_but_on_the_diagonal():
    adjacency = matrix([(0, 1), (1, 2), (2, 3)], 4)
    rng = np.random.default_rng(10)
    hits = sum((NULL_MODELS["erdos-renyi"](adjacency, np.zeros(4, np.int64), rng)).toarray()
               for _ in range(1_200))  # fmt: skip
    assert np.all(np.diag(hits) == 0)
    off_diagonal = hits[~np.eye(4, dtype=bool)]
    assert off_diagonal.sum() == 3 * 1_200
    assert chisquare(off_diagonal).pvalue > 1e-3


def test_node_classes_are_kind_layer_and_position_with_missing_as_a_value():
    graph = build(
        "classes",
        {
            "t0": tok(0), "t0b": tok(1), "f1": feat(1, 0, 5), "f2": feat(1, 0, 6),
            "f3": feat(1, 1, 5), "e1": err(1, 0), "l1": logit(1, 3, 0.5), "l2": logit(1, 4, 0.5),
        },
        [("t0", "f1", 1.0)],
    )  # fmt: skip
    classes = node_classes(graph).tolist()
    assert classes[2] == classes[3]  # same kind, layer and position
    assert classes[6] == classes[7]  # logits: no layer, same position
    assert len({classes[i] for i in (0, 1, 2, 4, 5, 6)}) == 6


# ---------------------------------------------------------------- enrichment


def feature_graph(adjacency: sp.csr_matrix, layers: np.ndarray, graph_id: str) -> CircuitGraph:
    """A CircuitGraph of feature nodes at (layer, pos 0) with ``adjacency`` = M[source, target]."""
    nodes = pd.DataFrame([feat(int(layer), 0, i) for i, layer in enumerate(layers)])
    metadata = GraphMetadata(graph_id=graph_id, model="toy")
    return CircuitGraph.from_scipy(adjacency.T.astype(np.float64), nodes, metadata)


def planted_ffl_graph() -> CircuitGraph:
    """A sparse random DAG on 150 nodes with 40 feed-forward loops planted on disjoint triples."""
    rng = np.random.default_rng(11)
    n = 150
    dense = np.triu(rng.random((n, n)) < 0.02, 1)
    for a, b, c in np.sort(rng.permutation(n)[:120].reshape(40, 3), axis=1):
        dense[a, b] = dense[b, c] = dense[a, c] = True
    return feature_graph(sp.csr_matrix(dense.astype(np.int64)), np.arange(n) // 15, "planted")


def test_planted_feed_forward_loops_are_enriched_beyond_the_degrees():
    rows = motif_enrichment(planted_ffl_graph(), null_models=["degree"], n_samples=20)
    ffl = next(row for row in rows if row.motif == "feed_forward_loop")
    assert ffl.observed >= 40 and ffl.z is not None and ffl.z > 2, ffl


def test_enrichment_is_deterministic_for_a_seed_and_per_null_model():
    graph = planted_ffl_graph()
    first = motif_enrichment(graph, n_samples=3, seed=5)
    assert motif_enrichment(graph, n_samples=3, seed=5) == first
    assert motif_enrichment(graph, n_samples=3, seed=6) != first
    alone = motif_enrichment(graph, null_models=["degree"], n_samples=3, seed=5)
    assert alone == [row for row in first if row.null_model == "degree"]
    assert [(row.null_model, row.motif) for row in first[:6]] == [
        *(("erdos-renyi", motif) for motif in MOTIFS),
        ("degree", "feed_forward_loop"),
    ]


def test_no_z_score_when_the_null_model_cannot_change_a_count():
    """Edges between strictly ordered layers stay so under layer-position: never a cycle."""
    adjacency, layer = layered_dag(np.random.default_rng(12))
    rows = adjacency_enrichment(adjacency, layer, ["layer-position"], n_samples=4)
    cycle = next(row for row in rows if row.motif == "cycle")
    assert (cycle.observed, cycle.null_mean, cycle.null_std, cycle.z) == (0, 0.0, 0.0, None)
    constant = summarise(dict.fromkeys(MOTIFS, 3), [dict.fromkeys(MOTIFS, 1)] * 3, "x")
    assert all(row.z is None and row.null_mean == 1.0 for row in constant)


def test_enrichment_refuses_what_it_cannot_compute():
    graph = planted_ffl_graph()
    adjacency = binary_edges(graph)
    for name in ("layer-position", "degree-layer-position"):
        with pytest.raises(ValueError, match="one per node"):
            NULL_MODELS[name](adjacency, np.zeros(3, np.int64), np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 2"):
        motif_enrichment(graph, n_samples=1)
    with pytest.raises(ValueError, match="unknown null model"):
        motif_enrichment(graph, null_models=["configuration"])


def row(null_model: str, z: float | None, motif: str = "feed_forward_loop") -> MotifEnrichment:
    return MotifEnrichment(motif, null_model, 10, 5.0, 0.0 if z is None else 1.0, z, 4)


def test_corpus_summary_counts_and_combines_z_scores():
    results = {
        "a": [row("degree", 3.0), row("erdos-renyi", None)],
        "b": [row("degree", -1.0), row("erdos-renyi", None)],
        "c": [row("degree", None)],
        "d": [row("degree", 1.0)],
    }
    degree, erdos = corpus_enrichment(results)
    assert (degree.null_model, degree.motif) == ("degree", "feed_forward_loop")
    assert (degree.n_graphs, degree.n_positive, degree.n_above_2, degree.n_undefined) == (
        3, 2, 1, 1,
    )  # fmt: skip
    assert degree.mean_z == pytest.approx(1.0)
    assert degree.combined_z == pytest.approx(3.0 / math.sqrt(3))
    assert (erdos.n_graphs, erdos.mean_z, erdos.combined_z, erdos.n_undefined) == (0, None, None, 2)


# ---------------------------------------------------------------- report


def test_report_is_self_contained_and_escapes_graph_ids():
    hostile = "<script>alert('x')</script>&<img src=x onerror=alert(1)>"
    per_graph = {
        hostile: [row("degree", 2.5, motif) for motif in MOTIFS],
        "plain": [row("degree", None, motif) for motif in MOTIFS],
    }
    page = render_motif_report(per_graph, title="Motifs <b>& co</b>")
    assert "<script" not in page and "<img src=x" not in page and "<b>&" not in page
    assert html_escaped(hostile) in page and "Motifs &lt;b&gt;&amp; co&lt;/b&gt;" in page
    assert page.count("data:image/png;base64,") == 1
    assert re.search(r"(src|href)=['\"]?(https?:|//)", page) is None
    assert "<h2>z-scores under degree</h2>" in page
    assert page.index("Corpus summary") < page.index("z-scores under degree")
    assert "<td class='up'>2.50</td>" in page and "<td title=" in page


def html_escaped(text: str) -> str:
    import html

    return html.escape(text)
