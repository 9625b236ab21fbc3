"""Consensus circuits: the nodes and edges present in at least a fraction of a set of graphs.

Identity is the node key (kind, layer, position, feature), so consensus is meaningful for
graphs of one model whose positions line up. An edge is kept when it occurs in at least
``min_fraction`` of the graphs; its weight is its mean over the graphs that contain it, and its
``support`` is that fraction. ``min_fraction = 1`` is the intersection; any fraction at or
below ``1/n`` is the union.

Alignment (``align``) says which positions line up:

* ``"start"`` (default): positions as they are, counted from the first token. Right for prompts
  of one template and one length.
* ``"end"``: the prompts are right-aligned before matching. Each node's position becomes
  ``pos + (L_max - L_g)``, where ``L_g`` is graph g's prompt length (see
  :func:`prompt_length`) and ``L_max`` the longest among the sources, so the last tokens of all
  prompts (where the logits sit) share a position. The consensus graph's positions are then in
  the longest prompt's frame; a source's own position is ``pos - position_shifts[g]``. Nodes
  without a position keep none.

A merged node's ``activation`` and ``token_prob`` are means over the graphs containing it. Its
text and per-prompt fields (``label``, ``token``, ``source_id``, ``is_target_logit``) are kept
only when every graph containing it agrees, and are missing otherwise: once positions are
shared by different prompts, one prompt's token (``token``, or a label such as ``Emb: " bee"``),
its node id (``source_id``, which may encode its own position) or its logit probability (in a
Neuronpedia logit label) would describe only that prompt. The vocabulary id of a logit stays in
``feature``.

There is no position-merged (``--by feature``) consensus graph: a graph's feature nodes must
carry a position (``CircuitGraph.validate``), and the store, display ids and error folding all
read it, so a feature merged over positions is not a node this graph model can hold. Alignment
only shifts positions; features that fire at different distances from the end still stay
apart. For those, ``compare --by feature`` and the ``shared_features`` query work at the
feature level instead (docs/compare.md). ``prompt_lengths`` in the metadata records the sources'
token counts so that a caller can warn when positions cannot line up.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from circuit_atlas.analysis.compare.pairwise import check_same_model
from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.graph import CircuitGraph, GraphMetadata, NodeKey

ALIGNMENTS = ("start", "end")
# Per-prompt node fields: kept on a merged node only when all its graphs agree.
AGREED_FIELDS = ("label", "token", "source_id", "is_target_logit")


def check_align(align: str) -> None:
    if align not in ALIGNMENTS:
        raise CircuitAtlasError(
            f"unknown alignment {align!r}: use 'start' (positions as they are) or 'end' "
            "(prompts right-aligned, last tokens together)"
        )


def default_consensus_id(graph_ids: list[str], min_fraction: float, align: str = "start") -> str:
    """Deterministic: the same sources, fraction and alignment give the same id (so
    ``--replace`` works); ``end`` adds a suffix so both alignments can be stored side by side."""
    check_align(align)
    digest = hashlib.sha256("\n".join(sorted(graph_ids)).encode()).hexdigest()[:10]
    suffix = "" if align == "start" else f"-{align}"
    return f"consensus-{min_fraction:g}-{len(graph_ids)}graphs-{digest}{suffix}"


def prompt_length(graph: CircuitGraph) -> int:
    """The number of prompt tokens: the metadata's tokens, or for a graph that records none, one
    more than its largest node position (the logits sit on the last token); 0 without positions."""
    if graph.metadata.tokens:
        return len(graph.metadata.tokens)
    positions = graph.nodes["pos"].dropna()
    return int(positions.max()) + 1 if len(positions) else 0


def position_shifts(graphs: list[CircuitGraph], align: str = "start") -> dict[str, int]:
    """Graph id → the positions added to its nodes: 0 for ``start``; ``L_max - L_g`` for
    ``end``."""
    check_align(align)
    if align == "start":
        return {g.graph_id: 0 for g in graphs}
    lengths = {g.graph_id: prompt_length(g) for g in graphs}
    longest = max(lengths.values())
    return {graph_id: longest - length for graph_id, length in lengths.items()}


def shifted_frames(graph: CircuitGraph, shift: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``graph.to_dataframes()`` with every position moved by ``shift``: the same graph with
    shifted positions (a uniform shift keeps keys unique), so keys are encoded in one place."""
    if not shift:
        return graph.to_dataframes()
    nodes = graph.nodes.copy()
    nodes["pos"] = nodes["pos"] + shift  # a missing position stays missing
    return CircuitGraph(nodes, graph.edges, graph.metadata).to_dataframes()


def consensus_graph(
    graphs: list[CircuitGraph],
    min_fraction: float = 0.5,
    graph_id: str | None = None,
    allow_mixed: bool = False,
    align: str = "start",
) -> CircuitGraph:
    """Nodes and edges in at least ``min_fraction`` of ``graphs``, with mean weights and
    ``support`` (the fraction of graphs containing each), by node key after aligning positions
    at the prompts' ``start`` or ``end`` (module docstring)."""
    check_align(align)
    if len(graphs) < 2:
        raise CircuitAtlasError("a consensus needs at least two graphs")
    if not 0.0 < min_fraction <= 1.0:
        raise CircuitAtlasError(f"the minimum fraction must be in (0, 1], got {min_fraction}")
    models = check_same_model(graphs, allow_mixed)
    n = len(graphs)
    shifts = position_shifts(graphs, align)
    node_frames, edge_frames = [], []
    for graph in graphs:
        nodes, edges = shifted_frames(graph, shifts[graph.graph_id])
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
    by_key = nodes[nodes["node_key"].isin(kept_keys)].groupby("node_key")
    means = by_key[["activation", "token_prob"]].mean()
    table = first.loc[kept_keys].copy()
    table["activation"] = means.loc[kept_keys, "activation"]
    table["token_prob"] = means.loc[kept_keys, "token_prob"]
    for name in AGREED_FIELDS:  # one value (missing counts as one) across the graphs, or none
        agreed = by_key[name].first().where(by_key[name].nunique(dropna=False) == 1)
        table[name] = agreed.reindex(kept_keys).astype(table[name].dtype)
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
    extra = {
        "sources": source_ids,
        "min_fraction": min_fraction,
        "align": align,
        "prompt_lengths": lengths,
    }
    if align != "start":
        extra["position_shifts"] = {gid: shifts[gid] for gid in source_ids}
    metadata = GraphMetadata(
        graph_id=graph_id or default_consensus_id(source_ids, min_fraction, align),
        model=models[0] if len(models) == 1 else None,
        tokens=tokens if same_tokens else [],
        method="consensus",
        source_tool="circuit-atlas consensus",
        transcoder_set=graphs[0].metadata.transcoder_set,
        extra=extra,
    )
    table = table.drop(columns=["node_key", "display_id"], errors="ignore")
    return CircuitGraph(table, edge_table, metadata)
