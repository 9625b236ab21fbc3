"""How good and how stable a partition is (pure functions of the affinity and labels)."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import scipy.sparse as sp


def modularity(matrix: sp.csr_matrix, labels: np.ndarray, resolution: float = 1.0) -> float:
    """Newman modularity of a symmetric weighted graph: Σ_c [W_cc/2m − γ (d_c/2m)²]."""
    total = matrix.sum()
    if total <= 0:
        return 0.0
    k = int(labels.max()) + 1
    membership = sp.csr_matrix(
        (np.ones(len(labels)), (np.arange(len(labels)), labels)), shape=(len(labels), k)
    )
    within = np.asarray((membership.T @ matrix @ membership).diagonal()).ravel()
    degree = np.asarray(membership.T @ np.asarray(matrix.sum(axis=1)).ravel()).ravel()
    return float((within / total - resolution * (degree / total) ** 2).sum())


def within_fraction(matrix: sp.csr_matrix, labels: np.ndarray) -> float:
    """Share of the total affinity that lies inside ROIs (1 − between-ROI share)."""
    coo = matrix.tocoo()
    total = coo.data.sum()
    return float(coo.data[labels[coo.row] == labels[coo.col]].sum() / total) if total else 0.0


def mean_pairwise_ari(partitions: list[np.ndarray]) -> float:
    """Mean adjusted Rand index over all pairs of partitions of the same items."""
    from sklearn.metrics import adjusted_rand_score

    pairs = list(combinations(range(len(partitions)), 2))
    if not pairs:
        return 1.0
    return float(np.mean([adjusted_rand_score(partitions[i], partitions[j]) for i, j in pairs]))
