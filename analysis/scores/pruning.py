"""Node and edge pruning by cumulative influence, exactly as circuit-tracer's ``prune_graph``.

1. Node influence ``I`` on the full graph. The node threshold is the influence value at which the
   descending cumulative share of ``I`` first reaches ``τ_n`` (``find_threshold``); nodes with
   ``I ≥`` that value are kept. As in circuit-tracer the share is taken over *all* nodes' influence
   (tokens included), and tokens and logits are then always kept.
2. On the node-pruned matrix (pruned rows and columns zeroed), edge scores
   ``E_ij = Â′_ij · (I′_i + w_i)``; edges with ``E ≥`` the ``τ_e`` cumulative-share threshold are
   kept.
3. Repeatedly drop feature/error nodes with no kept outgoing edge and feature nodes with no kept
   incoming edge, and the edges touching dropped nodes, until nothing changes.

Everything is sparse: edge scores exist only where ``A′`` has an entry, which changes nothing
about the threshold (zero entries never move a cumulative share).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from circuit_atlas.analysis.scores.attribution_matrix import (
    ERROR,
    FEATURE,
    LOGIT,
    TOKEN,
    AttributionMatrix,
)
from circuit_atlas.analysis.scores.influence import (
    NORMALISATION_FLOOR,
    influence,
    normalise,
    topological_order,
)
from circuit_atlas.analysis.scores.thresholds import DEFAULT_EDGE_THRESHOLD, DEFAULT_NODE_THRESHOLD

__all__ = ["DEFAULT_EDGE_THRESHOLD", "DEFAULT_NODE_THRESHOLD", "PruneResult", "prune"]


@dataclass(frozen=True)
class PruneResult:
    """Masks over the input's nodes and over ``adjacency``'s stored entries (CSR order)."""

    node_mask: np.ndarray  # bool, per node
    edge_mask: sp.csr_matrix  # bool, same sparsity as the input adjacency, True = kept
    node_influence: np.ndarray  # I on the full graph
    cumulative_share: np.ndarray  # each node's cumulative share of influence (descending rank)
    node_threshold: float
    edge_threshold: float


def check_threshold(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")
    return float(value)


def find_threshold(scores: np.ndarray, fraction: float) -> float:
    """The score at which the descending cumulative share first reaches ``fraction``.

    circuit-tracer's ``find_threshold``: ``searchsorted`` on the cumulative share, clamped to the
    last index (which only matters at ``fraction = 1`` with rounding).
    """
    if scores.size == 0:
        return 0.0
    ranked = np.sort(scores)[::-1]
    total = ranked.sum()
    if total <= 0:
        return 0.0
    share = np.cumsum(ranked) / total
    index = min(int(np.searchsorted(share, fraction)), ranked.size - 1)
    return float(ranked[index])


def cumulative_share(scores: np.ndarray) -> np.ndarray:
    """Each node's cumulative share when nodes are ranked by descending score."""
    order = np.argsort(-scores, kind="stable")
    total = scores.sum()
    out = np.zeros_like(scores, dtype=np.float64)
    if total > 0:
        out[order] = np.cumsum(scores[order]) / total
    return out


def edge_scores(
    pruned: sp.coo_matrix, logit_weights: np.ndarray, order: np.ndarray | None = None
) -> np.ndarray:
    """``E_ij = Â′_ij (I′_i + w_i)`` per stored entry of the node-pruned matrix.

    circuit-tracer's ``compute_edge_influence``, computed on the entries instead of a dense
    matrix: the row sums and the flow ``I′ + w`` are per node, so each entry's score is local.
    """
    n = pruned.shape[0]
    magnitude = np.abs(pruned.data)
    row_sums = np.bincount(pruned.row, weights=magnitude, minlength=n)
    normalised_data = magnitude / np.maximum(row_sums, NORMALISATION_FLOOR)[pruned.row]
    normalised = sp.csr_matrix((normalised_data, (pruned.row, pruned.col)), shape=pruned.shape)
    flow = influence(normalised, logit_weights, order) + logit_weights
    return normalised_data * flow[pruned.row]


def prune(
    matrix: AttributionMatrix,
    node_threshold: float = DEFAULT_NODE_THRESHOLD,
    edge_threshold: float = DEFAULT_EDGE_THRESHOLD,
) -> PruneResult:
    node_threshold = check_threshold("node threshold", node_threshold)
    edge_threshold = check_threshold("edge threshold", edge_threshold)
    adjacency = sp.csr_matrix(matrix.adjacency, dtype=np.float64)
    adjacency.eliminate_zeros()
    adjacency.sort_indices()
    weights = matrix.logit_weights
    order = topological_order(adjacency, matrix.keys)
    node_influence = influence(normalise(adjacency), weights, order)

    is_feature = matrix.mask(FEATURE)
    feature_or_error = is_feature | matrix.mask(ERROR)
    always = matrix.mask(TOKEN) | matrix.mask(LOGIT)
    node_mask = (node_influence >= find_threshold(node_influence, node_threshold)) | always

    # Edge scores on the node-pruned matrix, one per stored entry of ``adjacency``.
    coo = adjacency.tocoo()
    inside = node_mask[coo.row] & node_mask[coo.col]
    pruned = sp.coo_matrix(
        (np.where(inside, coo.data, 0.0), (coo.row, coo.col)), shape=adjacency.shape
    )
    scores = edge_scores(pruned, weights, order)
    kept = inside & (scores >= find_threshold(scores[inside], edge_threshold))

    # Drop nodes left without kept outgoing (features, errors) or incoming (features) edges.
    while True:
        kept &= node_mask[coo.row] & node_mask[coo.col]
        has_out = np.bincount(coo.col[kept], minlength=matrix.n) > 0
        has_in = np.bincount(coo.row[kept], minlength=matrix.n) > 0
        updated = node_mask & ~(feature_or_error & ~has_out) & ~(is_feature & ~has_in)
        if np.array_equal(updated, node_mask):
            break
        node_mask = updated

    edge_mask = sp.csr_matrix((kept, (coo.row, coo.col)), shape=adjacency.shape, dtype=bool)
    return PruneResult(
        node_mask=node_mask,
        edge_mask=edge_mask,
        node_influence=node_influence,
        cumulative_share=cumulative_share(node_influence),
        node_threshold=node_threshold,
        edge_threshold=edge_threshold,
    )
