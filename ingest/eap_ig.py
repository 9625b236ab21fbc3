"""EAP-IG component-graph JSON (hannamw/EAP-IG and MIB circuit-track exports).

The file holds ``cfg`` (n_layers, n_heads, …), ``nodes`` (``input``, ``a{l}.h{h}``, ``m{l}``,
``logits`` → ``in_graph``) and ``edges`` (``"{src}->{dst}"`` or ``"{src}->{dst}<q|k|v>"`` →
``score``, ``in_graph``). Edges into attention heads come in three channels (q, k, v): they are
kept as parallel edges with ``channel`` set, never summed, so the file round-trips.

What is refused (each as a one-line error naming the field), beyond the JSON reader's checks:

* ``cfg.n_layers``/``cfg.n_heads`` outside ``[1, MAX_LAYERS]``/``[1, MAX_HEADS]``, ``d_model``
  outside ``[1, MAX_D_MODEL]``;
* a component outside the model the file states: ``a{l}.h{h}`` needs ``l < n_layers`` and
  ``h < n_heads``, ``m{l}`` needs ``l < n_layers``;
* a non-finite edge ``score``;
* self-loops: a component graph has none (every edge runs from a component to a later one:
  input → heads/MLPs → logits), so an edge from a component to itself is refused.

The format has no prompt tokens and no positions, so there is nothing to check there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.graph import (
    CircuitGraph,
    GraphMetadata,
    NodeKey,
    NodeKind,
    nodes_from_records,
    shown,
)
from circuit_atlas.ingest.importers import MAX_HEADS, MAX_LAYERS, Importer, file_stem, register

FORMAT_NAME = "eap-ig"
# The widest public models have d_model of a few ten thousands; far beyond is a broken file.
MAX_D_MODEL = 1 << 20

# ASCII digits only: ``\d`` would also read "a٣.h0" as head a3.h0.
_NODE_NAME = re.compile(r"^(?:input|logits|a([0-9]+)\.h([0-9]+)|m([0-9]+))$")
_EDGE_NAME = re.compile(r"^(?P<src>[^<>]+?)->(?P<dst>[^<>]+?)(?:<(?P<channel>[qkv])>)?$")


class EapConfig(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    n_layers: int = Field(ge=1, le=MAX_LAYERS)
    n_heads: int = Field(ge=1, le=MAX_HEADS)
    parallel_attn_mlp: bool = False
    d_model: int | None = Field(None, ge=1, le=MAX_D_MODEL)


class EapNode(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    in_graph: bool = False
    score: float | None = None  # node-level scores, when attributed
    neurons_scores: list[float] | None = None  # per output dimension (EAP-IG's "neurons")


class EapEdge(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)
    score: float | int
    in_graph: bool = False


class EapGraphFile(BaseModel):
    """The versioned schema of an EAP-IG export (the format itself carries no version)."""

    model_config = ConfigDict(extra="allow")
    cfg: EapConfig
    nodes: dict[str, EapNode] = Field(min_length=2)
    edges: dict[str, EapEdge]


def _index(name: str, digits: str, what: str, bound: int, bound_name: str) -> int:
    """A layer or head number of a component name, within the model the file states."""
    # Compared as text first: int() of a 100,000-digit string is slow and then refused anyway.
    if len(digits.lstrip("0")) > len(str(bound)) or int(digits) >= bound:
        raise InvalidGraphError(
            f"nodes[{shown(name)}]: {what} {digits[:20]} is outside the model's "
            f"{bound} {what}s (cfg.{bound_name})"
        )
    return int(digits)


def component_key(name: str, cfg: EapConfig | None = None) -> NodeKey:
    """``a3.h4`` → attention head (layer 3, head 4); ``m2`` → MLP 2; ``input``/``logits``.

    With ``cfg``, layers and heads must lie within ``[0, n_layers)`` and ``[0, n_heads)``.
    """
    match = _NODE_NAME.fullmatch(name)
    if match is None:
        raise InvalidGraphError(
            f"nodes: {shown(name)} is not a component name (input, a{{l}}.h{{h}}, m{{l}}, logits)"
        )
    head_layer, head, mlp_layer = match.groups()
    if name == "input":
        return NodeKey(NodeKind.INPUT.value)
    if name == "logits":
        return NodeKey(NodeKind.LOGITS.value)
    n_layers = cfg.n_layers if cfg is not None else MAX_LAYERS
    if head is not None:
        n_heads = cfg.n_heads if cfg is not None else MAX_HEADS
        return NodeKey(
            NodeKind.ATTENTION_HEAD.value,
            layer=_index(name, head_layer, "layer", n_layers, "n_layers"),
            head=_index(name, head, "head", n_heads, "n_heads"),
        )
    return NodeKey(NodeKind.MLP.value, layer=_index(name, mlp_layer, "layer", n_layers, "n_layers"))


def parse_eap_ig(document: Any, path: Path, graph_id: str | None = None) -> CircuitGraph:
    data = EapGraphFile.model_validate(document)
    names = list(data.nodes)
    keys = [component_key(name, data.cfg) for name in names]
    row_of = {name: i for i, name in enumerate(names)}
    nodes = nodes_from_records(
        {**key._asdict(), "source_id": name, "in_graph": data.nodes[name].in_graph}
        for name, key in zip(names, keys)
    )
    nodes["in_graph"] = nodes["in_graph"].astype(bool)
    node_values = [data.nodes[name] for name in names]
    if any(v.score is not None for v in node_values):
        nodes["node_score"] = [np.nan if v.score is None else v.score for v in node_values]
    if any(v.neurons_scores is not None for v in node_values):
        nodes["neuron_scores"] = [v.neurons_scores for v in node_values]
    n = len(data.edges)
    sources = np.empty(n, dtype=np.int64)
    targets = np.empty(n, dtype=np.int64)
    channels = []
    for i, name in enumerate(data.edges):
        match = _EDGE_NAME.fullmatch(name)
        if match is None:
            raise InvalidGraphError(
                f"edges[{shown(name)}]: not of the form 'src->dst' or 'src->dst<q>'"
            )
        if match["src"] == match["dst"]:
            raise InvalidGraphError(
                f"edges[{shown(name)}]: an edge from a component to itself; a component "
                "graph has no self-loops"
            )
        for end, array in (("src", sources), ("dst", targets)):
            try:
                array[i] = row_of[match[end]]
            except KeyError:
                raise InvalidGraphError(
                    f"edges[{shown(name)}]: {shown(match[end])} is not one of the file's nodes"
                ) from None
        channels.append(match["channel"] or "")
    edges = pd.DataFrame(
        {
            "source": sources,
            "target": targets,
            "weight": np.array([e.score for e in data.edges.values()], dtype=np.float64),
            "channel": channels,
            "in_graph": np.array([e.in_graph for e in data.edges.values()], dtype=bool),
        }
    )
    cfg = data.cfg
    metadata = GraphMetadata(
        graph_id=graph_id or file_stem(path),
        method="eap-ig",
        source_tool="EAP-IG",
        source_format=FORMAT_NAME,
        extra={
            "source_file": path.name,
            "n_layers": cfg.n_layers,
            "n_heads": cfg.n_heads,
            "parallel_attn_mlp": cfg.parallel_attn_mlp,
            "d_model": cfg.d_model,
        },
    )
    return CircuitGraph(nodes, edges, metadata)


def _sniff(document: Any) -> bool:
    return isinstance(document, dict) and {"cfg", "nodes", "edges"} <= document.keys()


register(Importer(FORMAT_NAME, "EAP-IG component graph JSON", _sniff, parse_eap_ig))
