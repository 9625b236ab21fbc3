"""Run one ROI method on an affinity, with quality and stability, and build the quotient."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.native_threads import jvm_safe_threads

from .affinity import Affinity
from .methods import METHODS, RoiParams
from .quality import mean_pairwise_ari, modularity, within_fraction


@dataclass(frozen=True)
class RoiResult:
    affinity: Affinity
    method: str
    params: RoiParams
    labels: np.ndarray  # ROI index per affinity id
    quality: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def n_rois(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    @property
    def run_id(self) -> str:
        """Same method, parameters and graphs → same id (so re-running replaces, never adds)."""
        blob = json.dumps(
            [
                self.method,
                self.params.as_dict(),
                self.affinity.kind,
                sorted(self.affinity.graph_ids),
            ],
            sort_keys=True,
        )
        return f"roi-{self.method}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"

    def members(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "roi": self.labels,
                "id": self.affinity.ids,
                "layer": self.affinity.layer,
                "label": self.affinity.labels,
                "strength": np.asarray(self.affinity.matrix.sum(axis=1)).ravel(),
            }
        )


def run_method(affinity: Affinity, method: str, params: RoiParams) -> tuple[np.ndarray, dict]:
    if method not in METHODS:
        raise CircuitAtlasError(f"unknown ROI method {method!r}; choose from {', '.join(METHODS)}")
    if affinity.n == 0:
        raise CircuitAtlasError("nothing to group: the graph is empty")
    if params.k is not None and params.k > affinity.n:
        raise CircuitAtlasError(f"k = {params.k} is larger than the {affinity.n} nodes to group")
    if affinity.n < 2:
        return np.zeros(affinity.n, dtype=np.int64), {}
    with jvm_safe_threads():
        result = METHODS[method](affinity.matrix, params)
    return result.labels, result.details


def detect(
    affinity: Affinity, method: str, params: RoiParams | None = None, stability_seeds: int = 0
) -> RoiResult:
    """Labels, quality (modularity, within/between share) and, with ``stability_seeds > 1``, the
    mean ARI between runs with seeds ``seed .. seed + n − 1``."""
    params = params or RoiParams()
    labels, details = run_method(affinity, method, params)
    quality: dict[str, Any] = {
        "n_rois": int(labels.max()) + 1 if len(labels) else 0,
        "modularity": modularity(affinity.matrix, labels),
        "within_roi_weight": within_fraction(affinity.matrix, labels),
    }
    quality["between_roi_weight"] = 1.0 - quality["within_roi_weight"]
    if "bic" in details:
        quality["bic"] = details["bic"][details["chosen_k"]]
    if stability_seeds > 1:
        runs = [labels] + [
            run_method(affinity, method, replace(params, seed=params.seed + s))[0]
            for s in range(1, stability_seeds)
        ]
        quality["stability_ari_seeds"] = mean_pairwise_ari(runs)
    quality["decoder_cosine"] = None  # decoder directions are not in the stored graphs
    return RoiResult(affinity, method, params, labels, quality, details)
