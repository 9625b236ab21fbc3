"""``AttributionMatrix``: the arrays every score needs, cut once from a ``CircuitGraph``.

The scoring functions are pure functions of arrays (no pandas, no database), so a graph is first
reduced to: the adjacency ``A[target, source]`` (channels summed), each node's role (token,
feature, error, logit), its (layer, position) for folding features into error nodes, and the
logit weights ``w`` (each logit node's probability; 0 elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.graph import CircuitGraph, NodeKind

TOKEN = NodeKind.EMBEDDING.value
FEATURE = NodeKind.FEATURE.value
ERROR = NodeKind.ERROR.value
LOGIT = NodeKind.LOGIT.value
MISSING = -1  # layer/pos of nodes that have none


@dataclass(frozen=True)
class AttributionMatrix:
    """Adjacency plus node roles; ``keys`` only serve error messages and reports."""

    adjacency: sp.csr_matrix
    kind: np.ndarray  # object array of NodeKind values
    layer: np.ndarray  # int64, MISSING where absent
    pos: np.ndarray  # int64, MISSING where absent
    logit_weights: np.ndarray  # float64, p_i on logit rows, 0 elsewhere
    keys: tuple[str, ...]  # display ids, for messages

    @property
    def n(self) -> int:
        return self.adjacency.shape[0]

    def mask(self, kind: str) -> np.ndarray:
        return self.kind == kind

    @classmethod
    def from_graph(cls, graph: CircuitGraph) -> AttributionMatrix:
        """Cut the arrays from an attribution graph; refuse graphs the scores cannot mean.

        Scores are defined for attribution graphs (tokens → features/errors → logits) whose logit
        nodes carry probabilities; a component graph (EAP) has neither, so it is refused here
        rather than scored as nonsense.
        """
        nodes = graph.nodes
        kind = nodes["kind"].to_numpy(dtype=object)
        logits = kind == LOGIT
        if not logits.any():
            raise InvalidGraphError(
                f"graph {graph.graph_id!r} has no logit nodes; replacement and completeness are "
                "defined from the logits' probabilities (attribution graphs only)"
            )
        probs = nodes["token_prob"].to_numpy(dtype=np.float64, na_value=np.nan)
        if np.isnan(probs[logits]).any():
            raise InvalidGraphError(
                f"graph {graph.graph_id!r}: logit node(s) without a probability (token_prob); "
                "the logit weights w_i = p_i need them"
            )
        weights = np.where(logits, np.nan_to_num(probs), 0.0)
        if weights.sum() <= 0:
            raise InvalidGraphError(
                f"graph {graph.graph_id!r}: the logit probabilities sum to 0; nothing to attribute"
            )
        return cls(
            adjacency=graph.adjacency().astype(np.float64),
            kind=kind,
            layer=nodes["layer"].fillna(MISSING).to_numpy(dtype=np.int64),
            pos=nodes["pos"].fillna(MISSING).to_numpy(dtype=np.int64),
            logit_weights=weights,
            keys=tuple(k.display_id() for k in graph.keys()),
        )

    def subset(self, keep: np.ndarray, adjacency: sp.csr_matrix) -> AttributionMatrix:
        """The same roles for the nodes in ``keep`` (bool mask) with a new adjacency."""
        return AttributionMatrix(
            adjacency=adjacency,
            kind=self.kind[keep],
            layer=self.layer[keep],
            pos=self.pos[keep],
            logit_weights=self.logit_weights[keep],
            keys=tuple(np.asarray(self.keys, dtype=object)[keep]),
        )
