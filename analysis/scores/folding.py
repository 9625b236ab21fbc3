"""Fold unpinned features into their error nodes (circuit-tracer PR #42's subgraph rule).

A feature ``f`` at (layer ``l``, position ``t``) that is not part of a subgraph is treated as if it
had never been attributed: its contribution becomes part of the transcoder's error at (l, t).
So ``f``'s outgoing edges are added to the error node's (``A[:, e] += A[:, f]``), and ``f``'s row
and column are removed. This is also what makes scores of a pruned graph equal to scores of a
graph attributed to fewer features in the first place.

When the error node (l, t) is not in the graph (a pruned export such as Neuronpedia's JSON keeps
only some error nodes) there is nothing to fold into; Neuronpedia's rule is to drop the feature,
and the result lists those features so a report can say so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from circuit_atlas.analysis.scores.attribution_matrix import ERROR, FEATURE, AttributionMatrix


@dataclass(frozen=True)
class FoldResult:
    matrix: AttributionMatrix  # the graph without folded features
    kept: np.ndarray  # bool over the input's nodes: which survive (pinned features + non-features)
    folded: np.ndarray  # indices (input numbering) of features folded into an error node
    dropped: np.ndarray  # indices of features dropped because their error node is absent
    orphaned: np.ndarray  # indices (input numbering) of kept features left with no input edge


def fold_into_errors(matrix: AttributionMatrix, pinned: np.ndarray) -> FoldResult:
    """Fold every feature not in ``pinned`` (bool mask over nodes) into its error node."""
    n = matrix.n
    pinned = np.asarray(pinned, dtype=bool)
    if pinned.shape != (n,):
        raise ValueError(f"pinned mask has shape {pinned.shape}, expected ({n},)")
    unpinned = matrix.mask(FEATURE) & ~pinned
    kept = ~unpinned
    new_index = np.full(n, -1, dtype=np.int64)
    new_index[kept] = np.arange(int(kept.sum()))

    error_at = {
        (int(layer), int(pos)): int(new_index[i])
        for i, layer, pos in zip(
            np.flatnonzero(matrix.mask(ERROR)),
            matrix.layer[matrix.mask(ERROR)],
            matrix.pos[matrix.mask(ERROR)],
        )
    }
    unpinned_idx = np.flatnonzero(unpinned)
    target = np.array(
        [error_at.get((int(matrix.layer[i]), int(matrix.pos[i])), -1) for i in unpinned_idx],
        dtype=np.int64,
    )
    has_error = target >= 0

    # Column map R (n × n_kept): kept j → its new column; folded f → its error's new column;
    # dropped f → nothing. Then A_new = A[kept rows] @ R sums f's column into e's.
    rows = np.concatenate([np.flatnonzero(kept), unpinned_idx[has_error]])
    cols = np.concatenate([new_index[kept], target[has_error]])
    remap = sp.csr_matrix(
        (np.ones(rows.size), (rows, cols)), shape=(n, int(kept.sum())), dtype=np.float64
    )
    adjacency = sp.csr_matrix(sp.csr_matrix(matrix.adjacency)[np.flatnonzero(kept)] @ remap)
    adjacency.eliminate_zeros()

    before = np.asarray(abs(matrix.adjacency).sum(axis=1)).ravel()[kept] > 0
    after = np.asarray(abs(adjacency).sum(axis=1)).ravel() > 0
    orphaned = np.flatnonzero(kept)[(matrix.kind[kept] == FEATURE) & before & ~after]
    return FoldResult(
        matrix=matrix.subset(kept, adjacency),
        kept=kept,
        folded=unpinned_idx[has_error],
        dropped=unpinned_idx[~has_error],
        orphaned=orphaned,
    )
