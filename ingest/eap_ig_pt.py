"""EAP-IG's tensor graph files (``Graph.to_pt``, what MIB submissions may hold).

The file is ``torch.save`` of a dict: ``cfg`` (``n_layers``, ``n_heads``, ``parallel_attn_mlp``,
``d_model``), ``src_nodes`` (forward node names), ``dst_nodes`` (backward names, ``a0.h1<q>``
…), ``edges_scores`` and ``edges_in_graph`` [n_src, n_dst], ``nodes_in_graph`` [n_src], and
optionally node and neuron scores (not read). EAP-IG's graph always has an MLP per layer, so its
layout is :class:`~circuit_atlas.ingest.attribution.component_graph.ComponentGraph`'s with MLPs:
the names in the file must be exactly that graph's, and only its real edges are read (EAP-IG
keeps zeros elsewhere).

It is read like every ``.pt`` here, by the restricted unpickler
(:mod:`circuit_atlas.ingest.safe_torch`): no code in the file runs. The document is turned into
EAP-IG's JSON form and parsed by the JSON importer, so both give the same graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest.attribution.component_graph import ComponentGraph
from circuit_atlas.ingest.eap_ig import EapConfig, parse_eap_ig
from circuit_atlas.ingest.importers import Importer, register

if TYPE_CHECKING:
    import torch

FORMAT_NAME = "eap-ig-pt"
REQUIRED_KEYS = frozenset(
    {"cfg", "src_nodes", "dst_nodes", "edges_scores", "edges_in_graph", "nodes_in_graph"}
)


def layout_of(cfg: EapConfig) -> ComponentGraph:
    """EAP-IG's node and edge layout for a model configuration (always with MLPs)."""
    return ComponentGraph(cfg.n_layers, cfg.n_heads, True, cfg.parallel_attn_mlp)


def dst_names(layout: ComponentGraph) -> list[str]:
    """Backward names as EAP-IG writes them: ``a0.h1<q>``, ``m0``, ``logits``."""
    return [
        f"{name}<{channel}>" if channel else name
        for name, channel in zip(layout.backward_names, layout.backward_channels)
    ]


def parse_eap_ig_pt(document: Any, path: Path, graph_id: str | None = None) -> CircuitGraph:
    import torch

    cfg_value = document["cfg"]
    if not isinstance(cfg_value, dict):
        raise InvalidGraphError("cfg: expected a dict of n_layers, n_heads, parallel_attn_mlp")
    cfg = EapConfig.model_validate(cfg_value)
    layout = layout_of(cfg)
    for key, expected in (("src_nodes", layout.forward_names), ("dst_nodes", dst_names(layout))):
        names = document[key]
        if names != expected:
            raise InvalidGraphError(
                f"{key}: not the {len(expected)} names EAP-IG gives a model of "
                f"{cfg.n_layers} layers × {cfg.n_heads} heads (first difference: "
                f"{_first_difference(names, expected)})"
            )
    shape = (layout.n_forward, layout.n_backward)
    scores = _matrix(document, "edges_scores", shape).to(torch.float64).numpy()
    in_graph = _matrix(document, "edges_in_graph", shape).to(torch.bool).numpy()
    nodes_in_graph = _matrix(document, "nodes_in_graph", (layout.n_forward,))
    nodes_in_graph = nodes_in_graph.to(torch.bool).numpy()
    forward, backward = layout.edges()
    if not np.isfinite(scores[forward, backward]).all():
        raise InvalidGraphError("edges_scores: NaN or infinite scores on real edges")
    logits_in_graph = bool(in_graph[:, layout.logits_backward_slot].any())
    json_form = {
        "cfg": cfg.model_dump(),
        "nodes": {
            **{n: {"in_graph": bool(v)} for n, v in zip(layout.forward_names, nodes_in_graph)},
            "logits": {"in_graph": logits_in_graph},
        },
        "edges": {
            layout.edge_name(f, k): {"score": float(scores[f, k]), "in_graph": bool(in_graph[f, k])}
            for f, k in zip(forward, backward)
        },
    }
    graph = parse_eap_ig(json_form, path, graph_id)
    metadata = graph.metadata.model_copy(update={"source_format": FORMAT_NAME})
    return CircuitGraph(graph.nodes, graph.edges, metadata)


def _matrix(document: dict[str, Any], key: str, shape: tuple[int, ...]) -> torch.Tensor:
    import torch

    value = document[key]
    if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
        found = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise InvalidGraphError(f"{key}: expected a tensor of shape {shape}, found {found}")
    return value.detach().to("cpu")


def _first_difference(names: Any, expected: list[str]) -> str:
    if not isinstance(names, list):
        return f"a {type(names).__name__}, not a list"
    for i, (got, want) in enumerate(zip(names, expected)):
        if got != want:
            return f"position {i}: {str(got)[:40]!r}, expected {want!r}"
    return f"{len(names)} names, expected {len(expected)}"


def _sniff(document: Any) -> bool:
    return isinstance(document, dict) and document.keys() >= REQUIRED_KEYS


register(
    Importer(FORMAT_NAME, "EAP-IG Graph.to_pt file (component graph)", _sniff, parse_eap_ig_pt)
)
