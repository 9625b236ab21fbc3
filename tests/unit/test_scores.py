"""Scores, pruning and folding against hand-computed graphs and a dense reference.

The hand-built graphs live in ``score_graphs.py``; the arithmetic is written out here. With one
unit of logit weight (scores are ratios, so the logits' total probability cancels), ``q_i = I_i +
w_i`` is the flow through node i and ``I_j = Σ_i q_i Â_ij``: each node passes its flow to its
sources in proportion to |weight|. Flow ends at tokens and errors, so Σ_tokens I + Σ_errors I = 1,
and completeness = 1 − Σ_errors I / Σ_i q_i.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from circuit_atlas.analysis.scores.attribution_matrix import FEATURE, AttributionMatrix
from circuit_atlas.analysis.scores.folding import fold_into_errors
from circuit_atlas.analysis.scores.influence import influence, normalise, topological_order
from circuit_atlas.analysis.scores.pruning import find_threshold, prune
from circuit_atlas.analysis.scores.replacement import graph_scores, pruned_scores, subgraph_scores
from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.graph import CircuitGraph

from helpers.graphs import nine_node_graph, random_attribution_graph, ten_node_graph

EXACT = 1e-12


def matrix_of(graph: CircuitGraph) -> AttributionMatrix:
    return AttributionMatrix.from_graph(graph)


def index(matrix: AttributionMatrix, label_prefix: str) -> int:
    return next(i for i, k in enumerate(matrix.keys) if k.startswith(label_prefix))


# --------------------------------------------------------------------------- hand-built graphs
def test_nine_node_graph_replacement_11_12_completeness_32_33() -> None:
    # Logits La, Lb have w = 1/2 each (normalised).
    #   Lb ← T2 only:                  I_T2 = 1/2.
    #   La ← F2 only:                  I_F2 = 1/2.
    #   F2 ← F1 |−3|, T1 2, E 1 (sum 6): I_F1 = 1/2·3/6 = 1/4, I_T1 += 1/2·2/6 = 1/6,
    #                                    I_E = 1/2·1/6 = 1/12.
    #   F1 ← T0 1, T1 1:               I_T0 = 1/8, I_T1 += 1/8.
    #   F0 (dead end) gets no flow.
    # tokens = 1/2 + 1/6 + 1/8 + 1/8 = 11/12; errors = 1/12   → replacement = 11/12.
    # Σq = w (1) + features (1/2 + 1/4) + tokens (11/12) + errors (1/12) = 11/4;
    # completeness = 1 − (1/12)/(11/4) = 1 − 1/33 = 32/33.
    scores = graph_scores(matrix_of(nine_node_graph()))
    assert scores.replacement == pytest.approx(float(Fraction(11, 12)), abs=EXACT)
    assert scores.completeness == pytest.approx(float(Fraction(32, 33)), abs=EXACT)
    assert scores.token_influence == pytest.approx(11 / 12, abs=EXACT)
    assert scores.error_influence == pytest.approx(1 / 12, abs=EXACT)


def test_ten_node_graph_all_pinned_and_one_folded() -> None:
    # L ← Fc 5, T2 12 (sum 17):   I_Fc = 5/17, I_T2 = 12/17.
    # Fc ← Fb 5, Eb |−1|, T2 1 (sum 7): I_Fb = 25/119, I_Eb = 5/119, I_T2 += 5/119.
    # Fb ← Fa 67, Ea 14, T1 19 (sum 100): I_Fa = 25/119·0.67, I_Ea = 25/119·0.14 = 3.5/119,
    #                                      I_T1 = 25/119·0.19 = 4.75/119.
    # Fa ← Fz ← T0 (single inputs):       I_Fz = I_T0 = I_Fa = 16.75/119.
    # errors = (5 + 3.5)/119 = 1/14 → replacement = 13/14 ≈ 0.92857.
    # features = (35 + 25 + 16.75 + 16.75)/119 = 11/14; Σq = 1 + 11/14 + 1 = 39/14
    # completeness = 1 − (1/14)/(39/14) = 38/39 ≈ 0.97436.
    matrix = matrix_of(ten_node_graph())
    full = graph_scores(matrix)
    assert full.replacement == pytest.approx(13 / 14, abs=EXACT)
    assert full.completeness == pytest.approx(38 / 39, abs=EXACT)
    assert round(full.replacement, 5) == 0.92857 and round(full.completeness, 5) == 0.97436

    all_pinned = subgraph_scores(matrix, matrix.mask(FEATURE))
    assert all_pinned.scores == full

    # Fold Fb (L2 @1) into Eb (L2 @1): Fc's row becomes Eb 5 + (−1) = 4, T2 1 (sum 5), and Fb's
    # own inputs (Fa, Ea, T1 and, through Fa, Fz and T0) lose all their flow.
    #   I_Eb = 5/17·4/5 = 4/17; tokens = 12/17 + 5/17·1/5 = 13/17 → replacement = 13/17.
    #   features = I_Fc = 5/17; Σq = 1 + 5/17 + 1 = 39/17
    #   completeness = 1 − (4/17)/(39/17) = 35/39.
    pinned = matrix.mask(FEATURE).copy()
    pinned[index(matrix, "feature L2")] = False
    folded = subgraph_scores(matrix, pinned)
    assert folded.scores.replacement == pytest.approx(13 / 17, abs=EXACT)
    assert folded.scores.completeness == pytest.approx(35 / 39, abs=EXACT)
    assert folded.fold.folded.tolist() == [index(matrix, "feature L2")]
    assert folded.fold.dropped.size == 0 and folded.n_pinned_features == 3


def test_folding_every_feature_leaves_no_token_influence() -> None:
    # Every token → logit path passes through a feature, so folding all features routes all
    # influence to error nodes.
    for seed in range(5):
        matrix = matrix_of(random_attribution_graph(seed, direct_token_logit=False))
        result = subgraph_scores(matrix, np.zeros(matrix.n, dtype=bool))
        assert result.scores.replacement == 0.0
        assert result.fold.dropped.size == 0


def test_pinning_every_feature_reproduces_the_full_scores_exactly() -> None:
    for graph in [nine_node_graph(), ten_node_graph()] + [
        random_attribution_graph(seed) for seed in range(5)
    ]:
        matrix = matrix_of(graph)
        assert subgraph_scores(matrix, matrix.mask(FEATURE)).scores == graph_scores(matrix)


# --------------------------------------------------------------------------- dense reference
def reference_influence(dense: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """circuit-tracer's loop: add wᵀÂᵏ until the product vanishes (dense, no solve)."""
    magnitude = np.abs(dense)
    normalised = magnitude / np.maximum(magnitude.sum(axis=1, keepdims=True), 1e-10)
    current = weights @ normalised
    total = current.copy()
    for _ in range(10_000):
        if not current.any():
            return total
        current = current @ normalised
        total += current
    raise AssertionError("did not terminate")


def reference_prune(
    dense: np.ndarray, weights: np.ndarray, kinds: np.ndarray, tau_n: float, tau_e: float
) -> tuple[np.ndarray, np.ndarray]:
    """A dense transcription of the pruning definition (full n×n edge-score matrix)."""

    def threshold(scores: np.ndarray, fraction: float) -> float:
        ranked = np.sort(scores)[::-1]
        share = np.cumsum(ranked) / ranked.sum()
        return ranked[min(int(np.searchsorted(share, fraction)), len(ranked) - 1)]

    node_influence = reference_influence(dense, weights)
    nodes = node_influence >= threshold(node_influence, tau_n)
    nodes |= (kinds == "embedding") | (kinds == "logit")
    pruned = dense.copy()
    pruned[~nodes] = 0
    pruned[:, ~nodes] = 0
    magnitude = np.abs(pruned)
    normalised = magnitude / np.maximum(magnitude.sum(axis=1, keepdims=True), 1e-10)
    flow = reference_influence(pruned, weights) + weights
    edge_scores = normalised * flow[:, None]
    edges = (edge_scores >= threshold(edge_scores.ravel(), tau_e)) & (dense != 0)
    feature_or_error = (kinds == "feature") | (kinds == "error")
    while True:
        edges &= nodes[:, None] & nodes[None, :]
        no_out = feature_or_error & ~edges.any(0)
        no_in = (kinds == "feature") & ~edges.any(1)
        updated = nodes & ~no_out & ~no_in
        if (updated == nodes).all():
            return nodes, edges
        nodes = updated


@pytest.mark.parametrize("seed", range(6))
def test_influence_and_pruning_match_the_dense_reference(seed: int) -> None:
    matrix = matrix_of(random_attribution_graph(seed, n_layers=5, n_pos=5))
    dense = matrix.adjacency.toarray()
    expected = reference_influence(dense, matrix.logit_weights)
    solved = influence(normalise(matrix.adjacency), matrix.logit_weights)
    assert np.abs(solved - expected).max() < EXACT
    for tau_n, tau_e in [(0.8, 0.98), (0.5, 0.9), (0.95, 0.7), (1.0, 1.0)]:
        result = prune(matrix, tau_n, tau_e)
        nodes, edges = reference_prune(dense, matrix.logit_weights, matrix.kind, tau_n, tau_e)
        assert (result.node_mask == nodes).all()
        assert (result.edge_mask.toarray() == edges).all()


def test_influence_solves_graphs_in_any_node_order() -> None:
    rng = np.random.default_rng(7)
    n, m = 300, 4000
    a, b = rng.integers(0, n, m), rng.integers(0, n, m)
    upstream, downstream = np.minimum(a, b), np.maximum(a, b)
    keep = upstream != downstream
    shuffle = rng.permutation(n)  # hide the topological order
    adjacency = sp.csr_matrix(
        (rng.normal(size=keep.sum()), (shuffle[downstream[keep]], shuffle[upstream[keep]])),
        shape=(n, n),
    )
    weights = np.zeros(n)
    weights[shuffle[-5:]] = 0.2
    solved = influence(normalise(adjacency), weights)
    assert np.abs(solved - reference_influence(adjacency.toarray(), weights)).max() < EXACT
    order = topological_order(adjacency)
    position = np.empty(n, dtype=int)
    position[order] = np.arange(n)
    coo = adjacency.tocoo()
    assert (position[coo.col] < position[coo.row]).all()  # sources before targets


def test_find_threshold_is_circuit_tracers() -> None:
    scores = np.array([0.1, 0.4, 0.2, 0.3])
    # ranked 0.4 0.3 0.2 0.1 → shares 0.4 0.7 0.9 1.0; first share ≥ 0.8 is at 0.2
    assert find_threshold(scores, 0.8) == 0.2
    assert find_threshold(scores, 0.7) == 0.3  # searchsorted is left-sided: 0.7 is reached at 0.3
    assert find_threshold(scores, 1.0) == 0.1


# --------------------------------------------------------------------------- pruned graphs
def reference_fold(dense: np.ndarray, matrix: AttributionMatrix, pinned: np.ndarray) -> np.ndarray:
    """A[:, e] += A[:, f] for each unpinned feature f with error e, then delete f (dense)."""
    folded = dense.copy()
    unpinned = (matrix.kind == "feature") & ~pinned
    for f in np.flatnonzero(unpinned):
        same_slot = (matrix.layer == matrix.layer[f]) & (matrix.pos == matrix.pos[f])
        errors = np.flatnonzero((matrix.kind == "error") & same_slot)
        if errors.size:
            folded[:, errors[0]] += folded[:, f]
    keep = ~unpinned
    return folded[keep][:, keep]


@pytest.mark.parametrize("seed", range(4))
def test_pruned_scores_equal_attributing_to_the_kept_features_only(seed: int) -> None:
    graph = random_attribution_graph(seed, n_layers=5, n_pos=4, features_per_slot=3)
    matrix = matrix_of(graph)
    pruning = prune(matrix)
    kept_features = pruning.node_mask & matrix.mask(FEATURE)
    assert 0 < kept_features.sum() < matrix.mask(FEATURE).sum()
    smaller = reference_fold(matrix.adjacency.toarray(), matrix, kept_features)
    fewer = matrix.subset(~matrix.mask(FEATURE) | kept_features, sp.csr_matrix(smaller))
    assert pruned_scores(matrix, pruning).scores.replacement == pytest.approx(
        graph_scores(fewer).replacement, abs=EXACT
    )
    assert pruned_scores(matrix, pruning).scores.completeness == pytest.approx(
        graph_scores(fewer).completeness, abs=EXACT
    )


def test_fold_matches_the_dense_definition_and_reports_dropped_features() -> None:
    matrix = matrix_of(ten_node_graph())
    pinned = np.zeros(matrix.n, dtype=bool)
    result = fold_into_errors(matrix, pinned)
    expected = reference_fold(matrix.adjacency.toarray(), matrix, pinned)
    assert np.abs(result.matrix.adjacency.toarray() - expected).max() < EXACT
    # Fb has its error node Eb; Fz, Fa and Fc have none in this graph: Neuronpedia drops them.
    assert [matrix.keys[i] for i in result.folded] == ["feature L2 #3 @1"]
    assert sorted(matrix.keys[i] for i in result.dropped) == [
        "feature L0 #1 @0",
        "feature L1 #2 @0",
        "feature L3 #4 @2",
    ]


def test_pinned_feature_whose_inputs_were_all_dropped_is_reported_not_fatal() -> None:
    matrix = matrix_of(ten_node_graph())
    pinned = np.zeros(matrix.n, dtype=bool)
    pinned[index(matrix, "feature L1")] = True  # Fa: its only input Fz is dropped (no error node)
    result = subgraph_scores(matrix, pinned)
    assert [matrix.keys[i] for i in result.fold.orphaned] == ["feature L1 #2 @0"]
    assert 0.0 <= result.scores.replacement <= 1.0


# --------------------------------------------------------------------------- bad input
def test_a_feature_with_no_inputs_is_refused() -> None:
    graph = nine_node_graph()
    edges = graph.edges[graph.edges["target"] != 4]  # F1 loses both inputs
    broken = CircuitGraph(graph.nodes, edges, graph.metadata)
    with pytest.raises(InvalidGraphError, match="receive no edges"):
        graph_scores(matrix_of(broken))


def test_a_token_that_receives_edges_is_refused() -> None:
    graph = nine_node_graph()
    extra = graph.edges.iloc[:1].assign(source=6, target=0)  # F2 → T0
    broken = CircuitGraph(graph.nodes, pd.concat([graph.edges, extra]), graph.metadata)
    with pytest.raises(InvalidGraphError, match="sources"):
        graph_scores(matrix_of(broken))


def test_a_cycle_is_refused() -> None:
    graph = nine_node_graph()
    extra = graph.edges.iloc[:1].assign(source=6, target=4)  # F2 → F1 closes F1 → F2
    cyclic = CircuitGraph(graph.nodes, pd.concat([graph.edges, extra]), graph.metadata)
    with pytest.raises(InvalidGraphError, match="cycle"):
        prune(matrix_of(cyclic))


def test_graphs_without_logits_or_probabilities_are_refused() -> None:
    graph = nine_node_graph()
    no_logits = graph.nodes["kind"] != "logit"
    keep = np.flatnonzero(no_logits.to_numpy())
    remap = {old: new for new, old in enumerate(keep)}
    edges = graph.edges[graph.edges["target"].isin(keep) & graph.edges["source"].isin(keep)]
    edges = edges.assign(source=edges["source"].map(remap), target=edges["target"].map(remap))
    with pytest.raises(InvalidGraphError, match="no logit nodes"):
        matrix_of(CircuitGraph(graph.nodes[no_logits], edges, graph.metadata))
    unknown = graph.nodes.assign(token_prob=np.nan)
    with pytest.raises(InvalidGraphError, match="without a probability"):
        matrix_of(CircuitGraph(unknown, graph.edges, graph.metadata))


def test_thresholds_outside_0_1_are_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        prune(matrix_of(nine_node_graph()), node_threshold=1.5)
