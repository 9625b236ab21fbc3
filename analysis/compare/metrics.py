"""Overlap metrics between two graphs' items (identity → weight Series); pure functions.

* Jaccard: |A ∩ B| / |A ∪ B| of the identities.
* Weighted overlap (weighted Jaccard): Σ_i min(|a_i|, |b_i|) / Σ_i max(|a_i|, |b_i|) over the
  union, a missing item weighing 0.
* Spearman: rank correlation of the signed weights of the shared items (NaN below 3 shared).
* Influence overlap: Σ_i min(p_i, q_i) over influence shares p, q (each sums to 1), i.e.
  1 − total-variation distance: the share of influence both graphs put on the same items.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

METRICS = ("jaccard", "weighted_overlap", "spearman", "influence_overlap")


@dataclass(frozen=True)
class PairComparison:
    shared: int
    size_a: int
    size_b: int
    jaccard: float
    weighted_overlap: float
    spearman: float
    influence_overlap: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def jaccard(a: pd.Index, b: pd.Index) -> float:
    union = len(a.union(b))
    return len(a.intersection(b)) / union if union else 1.0


def weighted_overlap(a: pd.Series, b: pd.Series) -> float:
    aligned = pd.concat([a.abs(), b.abs()], axis=1, join="outer").fillna(0.0).to_numpy()
    top = aligned.max(axis=1).sum()
    return float(aligned.min(axis=1).sum() / top) if top > 0 else 1.0


def spearman_shared(a: pd.Series, b: pd.Series) -> float:
    shared = a.index.intersection(b.index)
    if len(shared) < 3:
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


def compare_pair(
    a: pd.Series, b: pd.Series, p: pd.Series | None = None, q: pd.Series | None = None
) -> PairComparison:
    return PairComparison(
        shared=len(a.index.intersection(b.index)),
        size_a=len(a),
        size_b=len(b),
        jaccard=jaccard(a.index, b.index),
        weighted_overlap=weighted_overlap(a, b),
        spearman=spearman_shared(a, b),
        influence_overlap=influence_overlap(p, q),
    )
