"""Materialise a pruning result as a new ``CircuitGraph`` (what ``circuit-atlas prune`` stores)."""

from __future__ import annotations

import numpy as np

from circuit_atlas.analysis.scores.pruning import PruneResult
from circuit_atlas.graph import CircuitGraph


def default_pruned_id(graph_id: str, node_threshold: float, edge_threshold: float) -> str:
    return f"{graph_id}--pruned-{node_threshold:g}-{edge_threshold:g}"


def pruned_graph(
    graph: CircuitGraph, pruning: PruneResult, graph_id: str | None = None
) -> CircuitGraph:
    """Kept nodes and kept edges of ``graph``; metadata names the parent and the thresholds.

    Each kept node's ``influence`` is its cumulative share of influence in the parent, the
    quantity Neuronpedia exports under that name, so pruned graphs from either source compare.
    """
    keep = pruning.node_mask
    new_index = np.full(graph.n_nodes, -1, dtype=np.int64)
    new_index[keep] = np.arange(int(keep.sum()))
    sources = graph.edges["source"].to_numpy()
    targets = graph.edges["target"].to_numpy()
    kept_edges = np.asarray(pruning.edge_mask[targets, sources]).ravel().astype(bool)
    kept_edges &= keep[sources] & keep[targets]
    edges = graph.edges[kept_edges].copy()
    edges["source"] = new_index[edges["source"].to_numpy()]
    edges["target"] = new_index[edges["target"].to_numpy()]
    nodes = graph.nodes[keep].copy()
    nodes["influence"] = pruning.cumulative_share[keep]
    metadata = graph.metadata.model_copy(
        update={
            "graph_id": graph_id
            or default_pruned_id(graph.graph_id, pruning.node_threshold, pruning.edge_threshold),
            "node_threshold": pruning.node_threshold,
            "edge_threshold": pruning.edge_threshold,
            "extra": {
                **graph.metadata.extra,
                "parent_graph_id": graph.graph_id,
                "derivation": "prune",
            },
        }
    )
    return CircuitGraph(nodes, edges, metadata)
