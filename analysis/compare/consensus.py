"""Consensus circuits: the nodes and edges present in at least a fraction of a set of graphs.

Identity is the node key (kind, layer, position, feature), so consensus is meaningful for
graphs of one prompt template and one model. An edge is kept when it occurs in at least
``min_fraction`` of the graphs; its weight is its mean over the graphs that contain it, and its
``support`` is that fraction. ``min_fraction = 1`` is the intersection; any fraction at or
below ``1/n`` is the union.

There is no position-merged (``--by feature``) consensus graph: a graph's feature nodes must
carry a position (``CircuitGraph.validate``), and the store, display ids and error folding all
read it, so a feature merged over positions is not a node this graph model can hold. For prompts
of different lengths, ``compare --by feature`` and the ``shared_features`` query work at the
feature level instead (docs/compare.md). ``prompt_lengths`` in the metadata records the sources'
token counts so that a caller can warn when positions cannot line up.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.graph import CircuitGraph, GraphMetadata, NodeKey

from .pairwise import check_same_model


def default_consensus_id(graph_ids: list[str], min_fraction: float) -> str:
    """Deterministic: the same sources and fraction give the same id (so ``--replace`` works)."""
    digest = hashlib.sha256("\n".join(sorted(graph_ids)).encode()).hexdigest()[:10]
    return f"consensus-{min_fraction:g}-{len(graph_ids)}graphs-{digest}"


def consensus_graph(
    graphs: list[CircuitGraph],
    min_fraction: float = 0.5,
    graph_id: str | None = None,
    allow_mixed: bool = False,
) -> CircuitGraph:
    """Nodes and edges in at least ``min_fraction`` of ``graphs``, with mean weights and
    ``support`` (the fraction of graphs containing each), by node key."""
    if len(graphs) < 2:
        raise CircuitAtlasError("a consensus needs at least two graphs")
    if not 0.0 < min_fraction <= 1.0:
        raise CircuitAtlasError(f"the minimum fraction must be in (0, 1], got {min_fraction}")
    models = check_same_model(graphs, allow_mixed)
    n = len(graphs)
    node_frames, edge_frames = [], []
    for graph in graphs:
        nodes, edges = graph.to_dataframes()
        node_frames.append(nodes)
        edge_frames.append(edges[["source_key", "target_key", "channel", "weight"]])
    nodes = pd.concat(node_frames, ignore_index=True)
    edges = pd.concat(edge_frames, ignore_index=True)
    threshold = min_fraction * n - 1e-9

    node_support = nodes.groupby("node_key").size()
    kept_keys = node_support[node_support >= threshold].index
    grouped = edges.groupby(["source_key", "target_key", "channel"], sort=True)
    summary = grouped["weight"].agg(["mean", "size"]).reset_index()
    summary = summary[
        (summary["size"] >= threshold)
        & summary["source_key"].isin(kept_keys)
        & summary["target_key"].isin(kept_keys)
    ]
    first = nodes.drop_duplicates("node_key").set_index("node_key")
    means = nodes.groupby("node_key")[["activation", "token_prob"]].mean()
    table = first.loc[kept_keys].copy()
    table["activation"] = means.loc[kept_keys, "activation"]
    table["token_prob"] = means.loc[kept_keys, "token_prob"]
    table["support"] = (node_support.loc[kept_keys] / n).to_numpy()
    keys = [NodeKey.decode(k) for k in kept_keys]
    for field_name in ("kind", "layer", "pos", "feature", "head"):
        table[field_name] = [getattr(k, field_name) for k in keys]
    table = table.reset_index()
    position = {key: i for i, key in enumerate(table["node_key"])}
    edge_table = pd.DataFrame(
        {
            "source": summary["source_key"].map(position).to_numpy(dtype=np.int64),
            "target": summary["target_key"].map(position).to_numpy(dtype=np.int64),
            "weight": summary["mean"].to_numpy(),
            "channel": summary["channel"].to_numpy(),
            "support": (summary["size"] / n).to_numpy(),
        }
    )
    source_ids = sorted(g.graph_id for g in graphs)
    tokens = graphs[0].metadata.tokens
    same_tokens = all(g.metadata.tokens == tokens for g in graphs)
    lengths = sorted({len(g.metadata.tokens) for g in graphs if g.metadata.tokens})
    metadata = GraphMetadata(
        graph_id=graph_id or default_consensus_id(source_ids, min_fraction),
        model=models[0] if len(models) == 1 else None,
        tokens=tokens if same_tokens else [],
        method="consensus",
        source_tool="circuit-atlas consensus",
        transcoder_set=graphs[0].metadata.transcoder_set,
        extra={"sources": source_ids, "min_fraction": min_fraction, "prompt_lengths": lengths},
    )
    table = table.drop(columns=["node_key", "display_id"], errors="ignore")
    return CircuitGraph(table, edge_table, metadata)
