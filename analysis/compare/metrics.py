"""Overlap metrics between two graphs' items (identity → weight Series); pure functions.

* Jaccard: |A ∩ B| / |A ∪ B| of the identities.
* Weighted overlap (weighted Jaccard): Σ_i min(|a_i|, |b_i|) / Σ_i max(|a_i|, |b_i|) over the
  union, a missing item weighing 0.
* Spearman: rank correlation of the signed weights of the shared *edges*, whatever the
  granularity (NaN below 3 shared edges) — the issue's "correlation of shared edge weights".
* Activation Spearman: the same on the shared nodes' (or features') |activation|.
* Influence overlap: Σ_i min(p_i, q_i) over influence shares p, q (each sums to 1), i.e.
  1 − total-variation distance: the share of influence both graphs put on the same items.

docs/compare.md gives the same definitions for users.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

METRICS = ("jaccard", "weighted_overlap", "spearman", "activation_spearman", "influence_overlap")
MIN_SHARED_FOR_SPEARMAN = 3


@dataclass(frozen=True)
class GraphItems:
    """One graph seen at one granularity; each Series is identity → value.

    ``items`` are the compared units (features, nodes or edges) with their weights; ``edges``
    the edges at the matching edge identity (signed weights), ``activations`` the nodes at the
    matching node identity (|activation|), ``shares`` the items' influence shares (None without
    logit probabilities).
    """

    items: pd.Series
    edges: pd.Series
    activations: pd.Series
    shares: pd.Series | None


@dataclass(frozen=True)
class PairComparison:
    shared: int
    size_a: int
    size_b: int
    shared_edges: int
    jaccard: float
    weighted_overlap: float
    spearman: float
    activation_spearman: float
    influence_overlap: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def jaccard(a: pd.Index, b: pd.Index) -> float:
    union = len(a.union(b))
    return len(a.intersection(b)) / union if union else 1.0


def weighted_overlap(a: pd.Series, b: pd.Series) -> float:
    """Σ min(|a_i|, |b_i|) / Σ max(|a_i|, |b_i|) over the union; NaN when every weight is 0
    (graphs without activations), where the ratio is 0/0 rather than perfect agreement."""
    aligned = pd.concat([a.abs(), b.abs()], axis=1, join="outer").fillna(0.0).to_numpy()
    top = aligned.max(axis=1).sum()
    return float(aligned.min(axis=1).sum() / top) if top > 0 else math.nan


def spearman_shared(a: pd.Series, b: pd.Series) -> float:
    """Spearman's ρ of the signed values of the shared identities; NaN below 3 shared or when
    either side is constant (the rank correlation is undefined there)."""
    shared = a.index.intersection(b.index)
    if len(shared) < MIN_SHARED_FOR_SPEARMAN:
        return math.nan
    x, y = a.loc[shared].to_numpy(), b.loc[shared].to_numpy()
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    from scipy.stats import spearmanr  # imported here: scipy.stats costs ~0.3 s at CLI start

    return float(spearmanr(x, y).statistic)


def influence_overlap(p: pd.Series | None, q: pd.Series | None) -> float:
    if p is None or q is None:
        return math.nan
    aligned = pd.concat([p, q], axis=1, join="inner").to_numpy()
    return float(aligned.min(axis=1).sum()) if len(aligned) else 0.0


def compare_pair(a: GraphItems, b: GraphItems) -> PairComparison:
    return PairComparison(
        shared=len(a.items.index.intersection(b.items.index)),
        size_a=len(a.items),
        size_b=len(b.items),
        shared_edges=len(a.edges.index.intersection(b.edges.index)),
        jaccard=jaccard(a.items.index, b.items.index),
        weighted_overlap=weighted_overlap(a.items, b.items),
        spearman=spearman_shared(a.edges, b.edges),
        activation_spearman=spearman_shared(a.activations, b.activations),
        influence_overlap=influence_overlap(a.shares, b.shares),
    )
