"""Write the Neuronpedia attribution-graph JSON: what circuit-tracer's ``create_graph_files``
writes and Neuronpedia's graph viewer loads, read back exactly by ``ingest/neuronpedia.py``.

Lossless for graphs imported from that format: every node field the importer keeps, the
metadata fields it maps, and — kept in ``metadata.extra["neuronpedia"]`` by the importer — the
fields it has no column for (``qParams`` with ``pinnedIds``/``supernodes``/``linkType``,
``generation_settings``, ``info``'s creator and links, …) are written back, so import → export →
import gives the same graph. Node ids are the file's own where the graph came from one (they are
not unique in real files: links are written target by target, sources ascending, the order the
importer resolves them by); other graphs get circuit-tracer's ids:

=========== ======================= ====================== ============ ==================
kind        ``node_id``             ``feature``            ``layer``    ``jsNodeId``
=========== ======================= ====================== ============ ==================
feature     ``{layer}_{index}_{pos}`` cantor(layer, index)  ``"{layer}"`` ``{layer}_{index}-0``
error       ``0_{layer}_{pos}``     ``-1``                 ``"{layer}"`` ``{layer}_{pos}-0``
embedding   ``E_{token_id}_{pos}``  ``pos``                ``"E"``      ``E_{token_id}-{pos}``
logit       ``{L}_{token_id}_{pos}`` token id              ``"{L}"``    ``L_{token_id}-{pos}``
=========== ======================= ====================== ============ ==================

with ``L = n_layers + 1`` (circuit-tracer's logit layer). Files first imported as the older
"1.0.0" schema (no ``schema_version``) keep its ``layer * 100_000 + index`` feature codes.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.graph import CircuitGraph, NodeKind
from circuit_atlas.ingest.neuronpedia import (
    LEGACY_LAYER_STRIDE,
    NEURONPEDIA_EXTRA,
    NeuronpediaGraphFile,
    cantor_pair,
)

ATTRIBUTION_KINDS = {k.value for k in (NodeKind.FEATURE, NodeKind.ERROR, NodeKind.EMBEDDING,
                                        NodeKind.LOGIT)}  # fmt: skip
FEATURE_TYPES = {
    NodeKind.FEATURE.value: "cross layer transcoder",  # what circuit-tracer writes for every set
    NodeKind.ERROR.value: "mlp reconstruction error",
    NodeKind.EMBEDDING.value: "embedding",
    NodeKind.LOGIT.value: "logit",
}
LEGACY_FORMAT = "neuronpedia/1.0.0"


def _number(value: Any) -> float | None:
    """A float, or ``None`` for a missing or NaN cell."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _integer(value: Any) -> int | None:
    return None if value is None or value is pd.NA else int(value)


def _node_layers(graph: CircuitGraph) -> tuple[int, int]:
    """``(n_layers, logit layer)``: the logit layer the graph's logits state, else
    circuit-tracer's ``n_layers + 1`` with ``n_layers`` one past the deepest feature or error."""
    nodes = graph.nodes
    inner = nodes[nodes["kind"].isin([NodeKind.FEATURE.value, NodeKind.ERROR.value])]["layer"]
    n_layers = int(inner.max()) + 1 if len(inner.dropna()) else 0
    logit_layers = nodes[nodes["kind"] == NodeKind.LOGIT.value]["layer"].dropna()
    logit_layer = int(logit_layers.iloc[0]) if len(logit_layers) else n_layers + 1
    return n_layers, logit_layer


def _created_ms(created_at: str | None) -> int | None:
    if not created_at:
        return None
    try:
        return round(datetime.fromisoformat(created_at).timestamp() * 1000)
    except ValueError:
        return None


def prompt_tokens(graph: CircuitGraph) -> list[str]:
    """The prompt's tokens as text; where only ids were recorded (a graph attributed from
    ``--tokens`` on a model without a tokenizer), the ids as text, one per position."""
    if graph.metadata.tokens:
        return list(graph.metadata.tokens)
    token_ids = graph.metadata.extra.get("input_token_ids") or []
    n_pos = max(len(token_ids), int(graph.nodes["pos"].max()) + 1 if graph.n_nodes else 1)
    return [str(token_ids[i]) if i < len(token_ids) else "" for i in range(n_pos)]


def neuronpedia_nodes(graph: CircuitGraph) -> list[dict[str, Any]]:
    """One Neuronpedia node per row of ``graph.nodes``, in row order."""
    legacy = graph.metadata.source_format == LEGACY_FORMAT
    _, logit_layer = _node_layers(graph)
    token_ids = graph.metadata.extra.get("input_token_ids")
    tokens = prompt_tokens(graph)
    out = []
    for row in graph.nodes.to_dict("records"):
        kind = row["kind"]
        pos = int(row["pos"])
        layer = _integer(row["layer"])
        feature = _integer(row["feature"])
        if kind == NodeKind.FEATURE.value:
            assert layer is not None and feature is not None
            if legacy and feature >= LEGACY_LAYER_STRIDE:
                raise InvalidGraphError(
                    f"feature {feature} at layer {layer} does not fit the 1.0.0 schema's codes"
                )
            code = layer * LEGACY_LAYER_STRIDE + feature if legacy else cantor_pair(layer, feature)
            node_id, js_id, layer_text = (
                f"{layer}_{feature}_{pos}",
                f"{layer}_{feature}-0",
                str(layer),
            )
        elif kind == NodeKind.ERROR.value:
            code, layer_text = -1, str(layer)
            node_id, js_id = f"0_{layer}_{pos}", f"{layer}_{pos}-0"
        elif kind == NodeKind.EMBEDDING.value:
            token_id = token_ids[pos] if token_ids and pos < len(token_ids) else pos
            code, layer_text = pos, "E"
            node_id = row["source_id"] or f"E_{token_id}_{pos}"
            js_id = "-".join(node_id.rsplit("_", 1))
        else:
            code, layer_text = feature, str(logit_layer if layer is None else layer)
            node_id, js_id = f"{layer_text}_{feature}_{pos}", f"L_{feature}-{pos}"
        label = row["label"]
        if row["source_id"] is not None:  # the file's own label, empty or not
            pass
        elif not label and kind == NodeKind.LOGIT.value:
            label = f'Output "{row["token"] or ""}" (p={_number(row["token_prob"]) or 0.0:.3f})'
        elif not label and kind == NodeKind.EMBEDDING.value and pos < len(tokens):
            label = f'Emb: "{tokens[pos]}"'
        out.append(
            {
                "node_id": row["source_id"] or node_id,
                "feature": code,
                "layer": layer_text,
                "ctx_idx": pos,
                "feature_type": FEATURE_TYPES[kind],
                "token_prob": _number(row["token_prob"]) or 0.0,
                "is_target_logit": row["is_target_logit"] is not pd.NA
                and bool(row["is_target_logit"]),
                "run_idx": 0,
                "reverse_ctx_idx": 0,
                "jsNodeId": js_id,
                "clerp": label or "",
                "influence": _number(row["influence"]),
                "activation": _number(row["activation"]),
            }
        )
    return out


def neuronpedia_links(graph: CircuitGraph, node_ids: list[str]) -> list[dict[str, Any]]:
    """Links target by target in node order, sources ascending within each (circuit-tracer's
    order, which decides the ids real files repeat)."""
    edges = graph.edges
    sources = edges["source"].to_numpy()
    targets = edges["target"].to_numpy()
    weights = edges["weight"].to_numpy(dtype=np.float64)
    order = np.lexsort((sources, targets))
    return [
        {"source": node_ids[s], "target": node_ids[t], "weight": float(w)}
        for s, t, w in zip(sources[order], targets[order], weights[order])
    ]


@dataclass(frozen=True)
class SavedView:
    """What Neuronpedia's viewer opens pinned: node keys, and labelled groups of them
    (supernodes), from a stored subgraph or an ROI run. Written into ``qParams``."""

    pinned: list[str]
    supernodes: list[tuple[str, list[str]]] = field(default_factory=list)

    def missing(self, graph: CircuitGraph) -> list[str]:
        """Node keys the view names that ``graph`` (e.g. pruned for export) does not have."""
        present = {key.encode() for key in graph.keys()}
        named = self.pinned + [key for _, members in self.supernodes for key in members]
        return sorted({key for key in named if key not in present})


def view_q_params(graph: CircuitGraph, node_ids: list[str], view: SavedView) -> dict[str, Any]:
    """``pinnedIds`` and ``supernodes`` (``[label, *node ids]``) of ``view`` in the ids the
    file gives ``graph``'s nodes; nodes the graph lacks are left out (``SavedView.missing``),
    and so is a supernode left empty. Every supernode member is pinned, as Neuronpedia expects."""
    id_of = {key.encode(): node_ids[row] for row, key in enumerate(graph.keys())}
    grouped = [key for _, members in view.supernodes for key in members]
    wanted = set(view.pinned) | set(grouped)
    pinned = [id_of[key] for key in id_of if key in wanted]  # the file's node order
    supernodes = [
        [label, *[id_of[key] for key in members if key in id_of]]
        for label, members in view.supernodes
    ]
    return {"pinnedIds": pinned, "supernodes": [g for g in supernodes if len(g) > 1]}


def neuronpedia_document(graph: CircuitGraph, view: SavedView | None = None) -> dict[str, Any]:
    """The Neuronpedia graph JSON of ``graph`` as a dict, validated against the importer's
    schema; ``InvalidGraphError`` for a graph that is not an attribution graph. With ``view``,
    its pinned nodes and supernodes replace the ``qParams`` the graph came with."""
    kinds = set(graph.nodes["kind"])
    if not kinds <= ATTRIBUTION_KINDS:
        other = ", ".join(sorted(kinds - ATTRIBUTION_KINDS))
        raise InvalidGraphError(
            f"graph {graph.graph_id!r} has {other} nodes: the Neuronpedia format holds "
            "attribution graphs (features, errors, embeddings, logits) only"
        )
    if "channel" in graph.edges and graph.edges["channel"].nunique() > 1:
        raise InvalidGraphError("the Neuronpedia format holds one weight per edge, not channels")
    meta = graph.metadata
    kept: dict[str, Any] = meta.extra.get(NEURONPEDIA_EXTRA) or {}
    tokens = prompt_tokens(graph)
    nodes = neuronpedia_nodes(graph)
    info: dict[str, Any] = {
        **kept.get("info", {}),
        "generator": {
            **kept.get("generator", {}),
            "name": meta.source_tool or "circuit-atlas",
            "version": meta.source_version,
        },
    }
    if meta.transcoder_set not in (None, info.get("neuronpedia_source_set")):
        info["transcoder_set"] = meta.transcoder_set  # else the importer reads it from there
    if (created := _created_ms(meta.created_at)) is not None:
        info["create_time_ms"] = created
    metadata: dict[str, Any] = {
        **kept.get("metadata", {}),
        "slug": meta.extra.get("slug") or meta.graph_id,
        "scan": meta.model or "",
        "prompt": meta.prompt,
        "prompt_tokens": tokens,
        "info": info,
    }
    if meta.source_format != LEGACY_FORMAT:
        metadata["schema_version"] = 1
    if meta.node_threshold is not None or meta.edge_threshold is not None:
        metadata["pruning_settings"] = {
            **kept.get("pruning_settings", {}),
            "node_threshold": meta.node_threshold,
            "edge_threshold": meta.edge_threshold,
        }
        metadata.setdefault("node_threshold", meta.node_threshold)
    q_params = {"linkType": "both", "pinnedIds": [], "supernodes": [], "clickedId": "",
                "sg_pos": "", **kept.get("qParams", {})}  # fmt: skip
    if view is not None:
        q_params.update(view_q_params(graph, [n["node_id"] for n in nodes], view))
    document = {
        "metadata": metadata,
        "qParams": q_params,
        "nodes": nodes,
        "links": neuronpedia_links(graph, [n["node_id"] for n in nodes]),
    }
    NeuronpediaGraphFile.model_validate(document)
    return document


def write_neuronpedia_json(graph: CircuitGraph, path: Path, view: SavedView | None = None) -> None:
    """Write ``graph`` as Neuronpedia graph JSON to ``path``, whole or not at all (``view``:
    see :func:`neuronpedia_document`)."""
    document = neuronpedia_document(graph, view)
    path = Path(path)
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, ensure_ascii=False, allow_nan=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def pruned_for_neuronpedia(
    graph: CircuitGraph, node_threshold: float | None = None, edge_threshold: float | None = None
) -> CircuitGraph:
    """The graph Neuronpedia should get: pruned by influence (circuit-tracer's ``prune_graph``,
    defaults 0.8/0.98) when thresholds are given or the graph was never pruned; a graph already
    pruned (``metadata.node_threshold`` set, e.g. imported from Neuronpedia) as it is, so the
    round trip is lossless. The pruned graph keeps ``graph``'s id and slug."""
    if (
        node_threshold is None
        and edge_threshold is None
        and graph.metadata.node_threshold is not None
    ):
        return graph
    from circuit_atlas.analysis.scores.attribution_matrix import AttributionMatrix
    from circuit_atlas.analysis.scores.pruned_graph import pruned_graph
    from circuit_atlas.analysis.scores.pruning import prune
    from circuit_atlas.analysis.scores.thresholds import (
        DEFAULT_EDGE_THRESHOLD,
        DEFAULT_NODE_THRESHOLD,
    )

    pruning = prune(
        AttributionMatrix.from_graph(graph),
        DEFAULT_NODE_THRESHOLD if node_threshold is None else node_threshold,
        DEFAULT_EDGE_THRESHOLD if edge_threshold is None else edge_threshold,
    )
    return pruned_graph(graph, pruning, graph_id=graph.graph_id)
