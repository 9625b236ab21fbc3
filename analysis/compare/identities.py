"""What "the same node" or "the same edge" means across graphs, and each item's weight.

Three granularities (``--by``); docs/compare.md states them with the formulas:

* ``feature`` — a transcoder feature, by its cross-graph identity (model, transcoder set, layer,
  index), wherever it fires; weight = Σ|activation| over its positions. The natural unit for
  prompts of different lengths. A feature-level *edge* joins two features; its weight is the sum
  of the signed weights of every edge between their instances (all positions, all channels).
* ``node`` — a node by its full key (kind, layer, position, feature/head); weight =
  |activation|. Meaningful for prompts of one template (same positions).
* ``edge`` — an edge by its endpoints' node keys and channel; weight = the signed edge weight.

Each graph becomes ``pandas.Series`` indexed by identity strings, so metrics are plain set and
vector operations. Influence shares (for influence-weighted overlap) come from the scores'
influence when the graph has logit probabilities, normalised to sum 1: a node's (or feature's)
influence ``I``, or an edge's flow ``E_ij = Â_ij (I_i + w_i)`` — circuit-tracer's edge score,
the share of the logit-weighted influence that passes along the edge.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from circuit_atlas.analysis.compare.metrics import GraphItems
from circuit_atlas.analysis.scores.attribution_matrix import AttributionMatrix
from circuit_atlas.analysis.scores.influence import influence, normalise
from circuit_atlas.analysis.scores.pruning import edge_scores
from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.graph import CircuitGraph, NodeKind

GRANULARITIES = ("feature", "node", "edge")


def check_granularity(by: str) -> str:
    if by not in GRANULARITIES:
        raise CircuitAtlasError(
            f"unknown granularity {by!r}; choose from {', '.join(GRANULARITIES)}"
        )
    return by


def feature_ids(graph: CircuitGraph) -> np.ndarray:
    """Per node row, ``model|transcoder set|layer|index`` (None for non-features).

    An object array holding ``None``, not a pandas Series: a Series' ``to_numpy`` turns ``None``
    into NaN, which then passes ``is not None`` checks as one spurious shared identity.
    """
    meta = graph.metadata
    model, transcoders = meta.model or "unknown", meta.transcoder_set or "unknown"
    nodes = graph.nodes
    is_feature = (nodes["kind"] == NodeKind.FEATURE.value).to_numpy()
    ids = np.full(len(nodes), None, dtype=object)
    layers = nodes["layer"].to_numpy(dtype=object)
    features = nodes["feature"].to_numpy(dtype=object)
    for i in np.flatnonzero(is_feature):
        ids[i] = f"{model}|{transcoders}|{int(layers[i])}|{int(features[i])}"
    return ids


def node_identities(graph: CircuitGraph, by: str) -> np.ndarray:
    """Per node row, its cross-graph identity: the feature identity (None for tokens, errors and
    logits, which have none across prompts) with ``by="feature"``, else the node key."""
    if check_granularity(by) == "feature":
        return feature_ids(graph)
    return np.array([k.encode() for k in graph.keys()], dtype=object)


def node_items(graph: CircuitGraph, by: str) -> pd.Series:
    """Node identity → |activation| (summed over a feature's positions with ``by="feature"``)."""
    ids = node_identities(graph, by)
    activation = graph.nodes["activation"].abs().fillna(0.0).to_numpy()
    keep = pd.notna(ids)
    return pd.Series(activation[keep], index=ids[keep]).groupby(level=0).sum()


def edge_keys(graph: CircuitGraph) -> np.ndarray:
    """Per edge row, ``source key>target key|channel`` (node keys contain neither ``>`` nor
    ``|``, so the string is as injective as the triple)."""
    keys = node_identities(graph, "node")
    edges = graph.edges
    source, target = edges["source"].to_numpy(), edges["target"].to_numpy()
    return keys[source] + ">" + keys[target] + "|" + edges["channel"].to_numpy(dtype=object)


def edge_items(graph: CircuitGraph, by: str) -> pd.Series:
    """Edge identity → signed weight, parallel edges summed.

    With ``by="feature"`` an edge is a pair of features and every edge between their instances
    (any positions, any channel) is summed: attribution is additive over sources, so the sum is
    feature A's total direct effect on feature B's instances in that prompt. Edges touching a
    token, error or logit node have no feature-level identity and are left out. Otherwise an
    edge is (source key, target key, channel), as stored.
    """
    edges = graph.edges
    source, target = edges["source"].to_numpy(), edges["target"].to_numpy()
    weight = edges["weight"].to_numpy(dtype=np.float64)
    if check_granularity(by) == "feature":
        ids = node_identities(graph, "feature")
        keep = pd.notna(ids[source]) & pd.notna(ids[target])
        index = ids[source[keep]] + ">" + ids[target[keep]]
        return pd.Series(weight[keep], index=index).groupby(level=0).sum()
    return pd.Series(weight, index=edge_keys(graph)).groupby(level=0).sum()


def items(graph: CircuitGraph, by: str) -> pd.Series:
    """Identity → weight of the compared units at granularity ``by``."""
    return edge_items(graph, by) if check_granularity(by) == "edge" else node_items(graph, by)


def edge_flows(graph: CircuitGraph) -> np.ndarray:
    """Per edge row, ``E_ij = Â_ij (I_i + w_i)`` (i the target, j the source) on the whole graph.

    circuit-tracer's edge-pruning score (``analysis/pruning.edge_scores``), applied without node
    pruning. ``q = I + w`` is the logit-weighted influence reaching node i, and ``Â_ij`` is the
    share of i's input magnitude that comes from j, so ``E_ij`` is the part of that influence
    passing along the edge; a node's outgoing flows sum to its influence (``Σ_i E_ij = I_j``), so
    edge shares and node shares measure the same quantity. Parallel channels each count with
    their own ``|w|``. Raises ``CircuitAtlasError`` without logit probabilities or on a cycle.
    """
    matrix = AttributionMatrix.from_graph(graph)
    edges = graph.edges
    entries = sp.coo_matrix(
        (
            edges["weight"].to_numpy(dtype=np.float64),
            (edges["target"].to_numpy(), edges["source"].to_numpy()),
        ),
        shape=(matrix.n, matrix.n),
    )
    return edge_scores(entries, matrix.logit_weights)


def influence_shares(graph: CircuitGraph, by: str) -> pd.Series | None:
    """Identity → share of the graph's influence (sums to 1); None if the graph has no scores.

    Nodes and features: node influence ``I`` (a feature's summed over its positions). Edges: the
    edge flow of :func:`edge_flows`.
    """
    check_granularity(by)
    try:
        if by == "edge":
            series = pd.Series(edge_flows(graph), index=edge_keys(graph))
        else:
            matrix = AttributionMatrix.from_graph(graph)
            node_influence = influence(normalise(matrix.adjacency), matrix.logit_weights)
            ids = node_identities(graph, by)
            keep = pd.notna(ids)
            series = pd.Series(node_influence[keep], index=ids[keep])
    except CircuitAtlasError:
        return None
    series = series.groupby(level=0).sum()
    total = series.sum()
    return series / total if total > 0 else None


def graph_items(graph: CircuitGraph, by: str) -> GraphItems:
    """Everything the pairwise metrics need from one graph at granularity ``by``.

    ``items`` is one of the other two series (edges for ``by="edge"``, nodes otherwise; node and
    edge identities coincide outside ``"feature"``), so each is built once."""
    unit = "feature" if check_granularity(by) == "feature" else "node"
    edges, activations = edge_items(graph, unit), node_items(graph, unit)
    return GraphItems(
        items=edges if by == "edge" else activations,
        edges=edges,
        activations=activations,
        shares=influence_shares(graph, by),
    )
