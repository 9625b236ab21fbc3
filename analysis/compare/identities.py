"""What "the same node" or "the same edge" means across graphs, and each item's weight.

Three granularities (``--by``):

* ``feature`` — a transcoder feature, by its cross-graph identity (model, transcoder set, layer,
  index), wherever it fires; weight = Σ|activation| over its positions. The natural unit for
  prompts of different lengths.
* ``node`` — a node by its full key (kind, layer, position, feature/head); weight =
  |activation|. Meaningful for prompts of one template (same positions).
* ``edge`` — an edge by its endpoints' node keys (and channel); weight = the signed edge weight.

Each graph becomes a ``pandas.Series`` indexed by identity strings, so metrics are plain set and
vector operations. Influence shares (for influence-weighted overlap) use the scores' influence
when the graph is scorable, normalised to sum 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.graph import CircuitGraph, NodeKind

from ..attribution_matrix import AttributionMatrix
from ..influence import influence, normalise

GRANULARITIES = ("feature", "node", "edge")


def feature_identity(graph: CircuitGraph) -> pd.Series:
    """Identity string per node row (None for non-features)."""
    meta = graph.metadata
    model, transcoders = meta.model or "unknown", meta.transcoder_set or "unknown"
    nodes = graph.nodes
    is_feature = (nodes["kind"] == NodeKind.FEATURE.value).to_numpy()
    ids = np.full(len(nodes), None, dtype=object)
    layers = nodes["layer"].to_numpy(dtype=object)
    features = nodes["feature"].to_numpy(dtype=object)
    for i in np.flatnonzero(is_feature):
        ids[i] = f"{model}|{transcoders}|{int(layers[i])}|{int(features[i])}"
    return pd.Series(ids)


def items(graph: CircuitGraph, by: str) -> pd.Series:
    """Identity → weight for one graph at granularity ``by``."""
    if by not in GRANULARITIES:
        raise CircuitAtlasError(
            f"unknown granularity {by!r}; choose from {', '.join(GRANULARITIES)}"
        )
    if by == "edge":
        nodes, edges = graph.to_dataframes()
        index = edges["source_key"] + ">" + edges["target_key"] + "|" + edges["channel"]
        return pd.Series(edges["weight"].to_numpy(), index=index.to_numpy()).groupby(level=0).sum()
    activation = graph.nodes["activation"].abs().fillna(0.0).to_numpy()
    if by == "node":
        index = [k.encode() for k in graph.keys()]
        return pd.Series(activation, index=index)
    identity = feature_identity(graph)
    keep = identity.notna().to_numpy()
    return pd.Series(activation[keep], index=identity[keep].to_numpy()).groupby(level=0).sum()


def influence_shares(graph: CircuitGraph, by: str) -> pd.Series | None:
    """Identity → share of the graph's influence (sums to 1); None if the graph has no scores."""
    if by == "edge":
        return None
    try:
        matrix = AttributionMatrix.from_graph(graph)
        node_influence = influence(normalise(matrix.adjacency), matrix.logit_weights)
    except CircuitAtlasError:
        return None
    if by == "node":
        index = np.array([k.encode() for k in graph.keys()], dtype=object)
        series = pd.Series(node_influence, index=index)
    else:
        identity = feature_identity(graph)
        keep = identity.notna().to_numpy()
        series = pd.Series(node_influence[keep], index=identity[keep].to_numpy())
        series = series.groupby(level=0).sum()
    total = series.sum()
    return series / total if total > 0 else None
