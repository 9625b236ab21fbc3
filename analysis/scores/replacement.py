"""Replacement and completeness of a graph, a pruned graph and a pinned subgraph.

circuit-tracer's ``compute_graph_scores`` (``Â``, ``I`` and ``w`` as in :mod:`.influence`):

* replacement  = Σ_tokens I / (Σ_tokens I + Σ_errors I) — how much of the logits' influence ends
  at input tokens rather than at unexplained error nodes;
* completeness = Σ_i (1 − Σ_{j∈errors} Â_ij)(I_i + w_i) / Σ_i (I_i + w_i) — the influence-weighted
  share of each node's inputs that is not error.

Subgraph scores fold unpinned features into their error nodes first (:mod:`.folding`); pruned
scores are subgraph scores whose pinned set is the features pruning keeps (edges between kept
nodes all stay: edge pruning is a display choice and removes no computation).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from circuit_atlas.analysis.scores.attribution_matrix import (
    ERROR,
    FEATURE,
    LOGIT,
    TOKEN,
    AttributionMatrix,
)
from circuit_atlas.analysis.scores.folding import FoldResult, fold_into_errors
from circuit_atlas.analysis.scores.influence import influence, normalise
from circuit_atlas.analysis.scores.pruning import PruneResult
from circuit_atlas.errors import InvalidGraphError

SHOWN_IN_ERRORS = 3


@dataclass(frozen=True)
class GraphScores:
    replacement: float
    completeness: float
    token_influence: float
    error_influence: float


@dataclass(frozen=True)
class SubgraphScores:
    """A subgraph's scores (``scores``), which features were folded away (``fold``), and how many
    stayed pinned; ``replacement``/``completeness`` are the scores' own, for convenience."""

    scores: GraphScores
    fold: FoldResult
    n_pinned_features: int

    @property
    def replacement(self) -> float:
        return self.scores.replacement

    @property
    def completeness(self) -> float:
        return self.scores.completeness


def _names(matrix: AttributionMatrix, mask: np.ndarray) -> str:
    shown = [matrix.keys[i] for i in np.flatnonzero(mask)[:SHOWN_IN_ERRORS]]
    more = int(mask.sum()) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def check_scorable(matrix: AttributionMatrix, allowed_sinks: np.ndarray | None = None) -> None:
    """Refuse graphs on which the scores would silently mean something else.

    * token and error nodes are sources: a row with inputs would pass influence through them;
    * a feature, or a logit with probability > 0, with an all-zero row swallows the influence
      that reaches it (Â's clamp turns it into a sink), understating both scores.

    ``allowed_sinks`` (bool mask) exempts features a fold deliberately left without inputs.
    """
    row_mass = np.asarray(abs(matrix.adjacency).sum(axis=1)).ravel()
    sources = matrix.mask(TOKEN) | matrix.mask(ERROR)
    if (sources & (row_mass > 0)).any():
        raise InvalidGraphError(
            f"token/error node(s) {_names(matrix, sources & (row_mass > 0))} receive edges; in an "
            "attribution graph they are sources (their rows must be zero)"
        )
    must_receive = matrix.mask(FEATURE) | (matrix.mask(LOGIT) & (matrix.logit_weights > 0))
    if allowed_sinks is not None:
        must_receive &= ~allowed_sinks
    empty = must_receive & (row_mass == 0)
    if empty.any():
        raise InvalidGraphError(
            f"node(s) {_names(matrix, empty)} receive no edges (all-zero rows): influence would "
            "vanish into them and understate both scores"
        )


def graph_scores(matrix: AttributionMatrix, allowed_sinks: np.ndarray | None = None) -> GraphScores:
    check_scorable(matrix, allowed_sinks)
    normalised = normalise(matrix.adjacency)
    weights = matrix.logit_weights
    node_influence = influence(normalised, weights, None)
    tokens = float(node_influence[matrix.mask(TOKEN)].sum())
    errors = float(node_influence[matrix.mask(ERROR)].sum())
    if tokens + errors <= 0:
        raise InvalidGraphError(
            "no influence reaches any token or error node; the logits are not connected to inputs"
        )
    is_error = matrix.mask(ERROR).astype(np.float64)
    error_fraction = normalised @ is_error
    flow = node_influence + weights
    completeness = float(((1.0 - error_fraction) * flow).sum() / flow.sum())
    return GraphScores(
        replacement=tokens / (tokens + errors),
        completeness=completeness,
        token_influence=tokens,
        error_influence=errors,
    )


def subgraph_scores(matrix: AttributionMatrix, pinned: np.ndarray) -> SubgraphScores:
    """Scores after folding every feature outside ``pinned`` (bool mask) into its error node."""
    check_scorable(matrix)
    fold = fold_into_errors(matrix, pinned)
    sinks = np.zeros(fold.matrix.n, dtype=bool)
    new_index = np.cumsum(fold.kept) - 1
    sinks[new_index[fold.orphaned]] = True
    scores = graph_scores(fold.matrix, allowed_sinks=sinks)
    n_pinned = int((np.asarray(pinned, dtype=bool) & matrix.mask(FEATURE)).sum())
    return SubgraphScores(scores=scores, fold=fold, n_pinned_features=n_pinned)


def pruned_scores(matrix: AttributionMatrix, pruning: PruneResult) -> SubgraphScores:
    """Scores of the pruned graph: features pruning removed are folded into their error nodes."""
    return subgraph_scores(matrix, pruning.node_mask & matrix.mask(FEATURE))
