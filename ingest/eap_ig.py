"""EAP-IG component-graph JSON (hannamw/EAP-IG and MIB circuit-track exports).

The file holds ``cfg`` (n_layers, n_heads, …), ``nodes`` (``input``, ``a{l}.h{h}``, ``m{l}``,
``logits`` → ``in_graph``) and ``edges`` (``"{src}->{dst}"`` or ``"{src}->{dst}<q|k|v>"`` →
``score``, ``in_graph``). Edges into attention heads come in three channels (q, k, v): they are
kept as parallel edges with ``channel`` set, never summed, so the file round-trips.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.graph import CircuitGraph, GraphMetadata, NodeKey, NodeKind, nodes_from_records

from .registry import Importer, file_stem, register

FORMAT_NAME = "eap-ig"

_NODE_NAME = re.compile(r"^(?:input|logits|a(\d+)\.h(\d+)|m(\d+))$")
_EDGE_NAME = re.compile(r"^(?P<src>[^<>]+?)->(?P<dst>[^<>]+?)(?:<(?P<channel>[qkv])>)?$")


class EapConfig(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    n_layers: int = Field(ge=1)
    n_heads: int = Field(ge=1)
    parallel_attn_mlp: bool = False
    d_model: int | None = None


class EapNode(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)
    in_graph: bool = False


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


def component_key(name: str) -> NodeKey:
    """``a3.h4`` → attention head (layer 3, head 4); ``m2`` → MLP 2; ``input``/``logits``."""
    match = _NODE_NAME.match(name)
    if match is None:
        raise InvalidGraphError(
            f"nodes: {name!r} is not a component name (input, a{{l}}.h{{h}}, m{{l}}, logits)"
        )
    head_layer, head, mlp_layer = match.groups()
    if name == "input":
        return NodeKey(NodeKind.INPUT.value)
    if name == "logits":
        return NodeKey(NodeKind.LOGITS.value)
    if head is not None:
        return NodeKey(NodeKind.ATTENTION_HEAD.value, layer=int(head_layer), head=int(head))
    return NodeKey(NodeKind.MLP.value, layer=int(mlp_layer))


def parse_eap_ig(document: Any, path: Path, graph_id: str | None = None) -> CircuitGraph:
    data = EapGraphFile.model_validate(document)
    names = list(data.nodes)
    keys = [component_key(name) for name in names]
    row_of = {name: i for i, name in enumerate(names)}
    nodes = nodes_from_records(
        {**key._asdict(), "source_id": name, "in_graph": data.nodes[name].in_graph}
        for name, key in zip(names, keys)
    )
    nodes["in_graph"] = nodes["in_graph"].astype(bool)
    n = len(data.edges)
    sources = np.empty(n, dtype=np.int64)
    targets = np.empty(n, dtype=np.int64)
    channels = []
    for i, name in enumerate(data.edges):
        match = _EDGE_NAME.match(name)
        if match is None:
            raise InvalidGraphError(f"edges[{name!r}]: not of the form 'src->dst' or 'src->dst<q>'")
        for end, array in (("src", sources), ("dst", targets)):
            try:
                array[i] = row_of[match[end]]
            except KeyError:
                raise InvalidGraphError(
                    f"edges[{name!r}]: {match[end]!r} is not one of the file's nodes"
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
