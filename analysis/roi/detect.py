"""Run one ROI method on an affinity, with quality and stability, and build the quotient."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from circuit_atlas.analysis.roi.affinity import FUNCTIONAL_KINDS, Affinity
from circuit_atlas.analysis.roi.algorithms import METHODS, USES, RoiParams
from circuit_atlas.analysis.roi.decoders import DecoderCosine, Decoders, decoder_cosine, present
from circuit_atlas.analysis.roi.quality import mean_pairwise_ari, modularity, within_fraction
from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.native_threads import jvm_safe_threads


@dataclass(frozen=True)
class RoiResult:
    affinity: Affinity
    method: str
    params: RoiParams
    labels: np.ndarray  # ROI index per affinity id
    quality: dict[str, Any]
    details: dict[str, Any] = field(default_factory=dict)
    decoder: DecoderCosine | None = None  # cross-prompt runs given decoder directions

    @property
    def n_rois(self) -> int:
        return int(self.labels.max()) + 1 if len(self.labels) else 0

    @property
    def used_params(self) -> dict[str, Any]:
        """The parameters this run's method reads (the rest did not shape the ROIs)."""
        if self.method not in USES:  # a hand-made result (tests)
            return self.params.as_dict()
        return self.params.used_by(self.method)

    @property
    def run_id(self) -> str:
        """Same inputs → same id, so re-running replaces a run and never adds a second one.

        Hashed: the method, the parameters it reads (:data:`.methods.USES`; a value it ignores
        must not split one result into two runs), the affinity kind, ``min_graphs`` across
        prompts (it picks the features), and the graph ids. Left out because they never change
        the ROIs: ``--stability``, ``--bootstrap`` and ``--decoders`` (they add numbers; a rerun
        with them updates the run in place) and ``--allow-mixed`` (a precondition: graphs that
        need it fail without it, and on others it changes nothing).
        """
        blob = json.dumps(
            [
                self.method,
                self.used_params,
                self.affinity.kind,
                self.affinity.min_graphs,
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


def _nothing_to_group(affinity: Affinity) -> str:
    if affinity.scope == "graph":
        return (
            f"nothing to group: graph {affinity.graph_ids[0]!r} has no edges between its "
            f"{affinity.n} groupable node(s) (every node but input tokens and logits)"
        )
    return (
        f"nothing to group: the {affinity.kind} affinity between the {affinity.n} features in "
        f"at least {affinity.min_graphs} graphs is zero everywhere"
    )


def run_method(affinity: Affinity, method: str, params: RoiParams) -> tuple[np.ndarray, dict]:
    """Labels and details of one method on ``affinity``, after the checks every method shares.

    ``k`` given to a method that does not read it (louvain, leiden: their number of ROIs comes
    from modularity) is an error rather than a warning: the user asked for k ROIs, and a
    different number would be a wrong answer that a warning lets slip into a script. The
    message points to ``--resolution`` and to the methods that take ``k``.
    """
    if method not in METHODS:
        raise CircuitAtlasError(f"unknown ROI method {method!r}; choose from {', '.join(METHODS)}")
    if params.k is not None and "k" not in USES[method]:
        takers = ", ".join(m for m in METHODS if "k" in USES[m])
        raise CircuitAtlasError(
            f"{method} does not take --k: it finds the number of ROIs itself (tune --resolution)"
            f"; the methods that take --k are {takers}"
        )
    if affinity.n == 0:
        raise CircuitAtlasError("nothing to group: the graph is empty")
    if params.k is not None and params.k > affinity.n:
        raise CircuitAtlasError(f"k = {params.k} is larger than the {affinity.n} nodes to group")
    if affinity.matrix.nnz == 0:
        raise CircuitAtlasError(_nothing_to_group(affinity))
    with jvm_safe_threads():
        result = METHODS[method](affinity.matrix, params)
    return result.labels, result.details


def detect(
    affinity: Affinity,
    method: str,
    params: RoiParams | None = None,
    stability_seeds: int = 0,
    decoders: Decoders | None = None,
) -> RoiResult:
    """Labels, quality (modularity, within/between share), with ``stability_seeds > 1`` the mean
    ARI between runs with seeds ``seed .. seed + n − 1``, and with ``decoders`` (cross-prompt
    only) the mean within-ROI decoder cosine (:mod:`.decoders`)."""
    params = params or RoiParams()
    if decoders is not None:
        if affinity.scope != "cross-prompt" and affinity.kind not in FUNCTIONAL_KINDS:
            raise CircuitAtlasError(
                "decoder directions apply to cross-prompt ROIs (members are features); the ROIs "
                "of one graph group its nodes"
            )
        present(affinity.ids, decoders)  # none matched: fail before clustering
    labels, details = run_method(affinity, method, params)
    quality: dict[str, Any] = {
        "n_rois": int(labels.max()) + 1 if len(labels) else 0,
        "modularity": modularity(affinity.matrix, labels),
        "within_roi_weight": within_fraction(affinity.matrix, labels),
    }
    quality["between_roi_weight"] = 1.0 - quality["within_roi_weight"]
    if "bic" in details:
        quality["bic"] = details["bic"][details["chosen_k"]]
        if (note := bic_boundary_note(details["chosen_k"], params, affinity.n)) is not None:
            details["notes"] = [*details.get("notes", []), note]
    if stability_seeds > 1:
        runs = [labels] + [
            run_method(affinity, method, replace(params, seed=params.seed + s))[0]
            for s in range(1, stability_seeds)
        ]
        quality["stability_ari_seeds"] = mean_pairwise_ari(runs)
    cosine = None
    if decoders is not None:
        cosine = decoder_cosine(affinity.ids, labels, quality["n_rois"], decoders)
        quality["decoder_features_missing"] = cosine.missing
    quality["decoder_cosine"] = cosine.mean if cosine else None  # null: no decoders given
    return RoiResult(affinity, method, params, labels, quality, details, cosine)


def bic_boundary_note(chosen_k: int, params: RoiParams, n: int) -> str | None:
    """A warning when BIC chose the largest K it was allowed: the best K may lie beyond it, so
    the ROIs may be too coarse. ``None`` when K was fixed or the bound was not binding."""
    if params.k is not None or chosen_k < params.max_k or params.max_k >= n:
        return None
    return (
        f"BIC chose K = {chosen_k}, the upper bound --max-k {params.max_k}: a larger K may fit "
        f"better; rerun with a larger --max-k (up to {n}) to see whether BIC turns down"
    )
