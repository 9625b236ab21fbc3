"""circuit-tracer's dense graph layout → ``CircuitGraph``: one builder for the ``.pt`` importer
and for the platform's own feature attribution, so both give the same nodes and edges.

Rows are targets and columns sources, in the order ``[selected features, errors (layer-major,
then position), tokens, logits]``; feature row ``i`` is ``active[selected[i]]`` = (layer,
position, index); logits sit at the last position.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.graph import CircuitGraph, GraphMetadata, NodeKind, nodes_from_records


def graph_from_adjacency(
    adjacency: np.ndarray,
    *,
    active: np.ndarray,
    selected: np.ndarray,
    activations: np.ndarray | None,
    n_layers: int,
    n_pos: int,
    logit_ids: Sequence[int],
    logit_tokens: Sequence[str],
    logit_probabilities: Sequence[float],
    metadata: GraphMetadata,
) -> CircuitGraph:
    """The graph of a dense adjacency in circuit-tracer's layout; only non-zero entries become
    edges. Raises ``InvalidGraphError`` when the shapes disagree or a weight is not finite."""
    n_feat, n_logits = int(selected.size), len(logit_ids)
    n = adjacency.shape[0]
    if adjacency.shape != (n, n) or n != n_feat + n_layers * n_pos + n_pos + n_logits:
        raise InvalidGraphError(
            f"adjacency_matrix: shape {tuple(adjacency.shape)} does not fit {n_feat} features + "
            f"{n_layers}×{n_pos} errors + {n_pos} tokens + {n_logits} logits"
        )
    out_of_range = selected.size and (selected.min() < 0 or selected.max() >= len(active))
    if (active.size and active.shape[1:] != (3,)) or out_of_range:
        raise InvalidGraphError("selected_features: indices outside active_features (n × 3)")
    target_rows, source_rows = np.nonzero(adjacency)  # NaN and ±inf are non-zero: kept
    weights = adjacency[target_rows, source_rows].astype(np.float64)
    if not np.isfinite(weights).all():
        raise InvalidGraphError("adjacency_matrix: contains NaN or infinite weights")
    feature_activation = (
        activations[selected].astype(np.float64)
        if activations is not None and len(activations) == len(active)
        else np.full(n_feat, np.nan)
    )
    records: list[dict[str, Any]] = [
        {
            "kind": NodeKind.FEATURE.value,
            "layer": int(layer),
            "pos": int(pos),
            "feature": int(index),
            "activation": float(act),
        }
        for (layer, pos, index), act in zip(active[selected], feature_activation)
    ]
    records += [
        {"kind": NodeKind.ERROR.value, "layer": layer, "pos": pos}
        for layer in range(n_layers)
        for pos in range(n_pos)
    ]
    records += [{"kind": NodeKind.EMBEDDING.value, "pos": pos} for pos in range(n_pos)]
    records += [
        {
            "kind": NodeKind.LOGIT.value,
            "pos": n_pos - 1,
            "feature": int(token_id),
            "token": text or None,
            "token_prob": float(p),
            "is_target_logit": i == 0,
        }
        for i, (token_id, text, p) in enumerate(zip(logit_ids, logit_tokens, logit_probabilities))
    ]
    edges = pd.DataFrame({"source": source_rows, "target": target_rows, "weight": weights})
    return CircuitGraph(nodes_from_records(records), edges, metadata)
