"""auto-circuit's ``PruneScores`` saved with ``torch.save``: one score per edge of the factorized
TransformerLens graph.

``PruneScores`` maps each destination module to a tensor indexed by the edge's patch index
``[head, source]`` (heads: ``blocks.{l}.hook_{q,k,v}_input``) or ``[source]``
(``blocks.{l}.hook_mlp_in``, and ``blocks.{L-1}.hook_resid_post`` for the logits), where the
source index counts auto-circuit's source nodes in order — ``Resid Start``, then each block's
heads, then its MLP — over those upstream of the destination. That is exactly
:class:`~circuit_atlas.ingest.attribution.component_graph.ComponentGraph`'s forward order, so
a score lands on the edge of the same name (``a0.h2->a1.h0<k>``). The model's shape is read
from the file: layers from the module names, heads from the tensors, attention-only from the
absence of MLP inputs, parallel blocks from the width of an MLP's scores.

Refused, with the reason: scores per token position (``seq_len`` set when patching: a score per
position is not one edge's), and ``hook_attn_in`` (``separate_qkv=False``: one score for q, k
and v together). The file goes through the restricted unpickler like every ``.pt`` here; the
scores keep auto-circuit's sign (its losses are usually the negated metric).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest.attribution.component_graph import CHANNELS, ComponentGraph
from circuit_atlas.ingest.eap_ig import parse_eap_ig
from circuit_atlas.ingest.importers import Importer, register

FORMAT_NAME = "auto-circuit"
_MODULE = re.compile(
    r"^blocks\.([0-9]+)\.hook_(q_input|k_input|v_input|mlp_in|resid_post|attn_in)$"
)


def parse_prune_scores(document: Any, path: Path, graph_id: str | None = None) -> CircuitGraph:
    import torch

    modules: dict[tuple[int, str], np.ndarray] = {}
    for name, value in document.items():
        match = _MODULE.fullmatch(name)
        assert match is not None  # the sniff checked every key
        if match[2] == "attn_in":
            raise InvalidGraphError(
                f"{name}: one score for q, k and v together (separate_qkv=False); Circuit "
                "Atlas's graph has an edge per channel: use separate_qkv=True"
            )
        if not isinstance(value, torch.Tensor):
            raise InvalidGraphError(f"{name}: expected a tensor of scores")
        modules[(int(match[1]), match[2])] = value.detach().to("cpu", torch.float64).numpy()
    layout = _layout(modules)
    scores = np.zeros((layout.n_forward, layout.n_backward))
    for (block, kind), tensor in modules.items():
        if kind == "resid_post":
            columns: list[int] = [layout.logits_backward_slot]
        elif kind == "mlp_in":
            columns = [layout.mlp_backward_slot(block)]
        else:
            slots = layout.head_backward_slots(block, kind[0])
            columns = list(range(slots.start, slots.stop))
        width = int(layout.upstream[columns[0]])
        expected = (len(columns), width) if kind.endswith("_input") else (width,)
        if tensor.shape != expected:
            raise InvalidGraphError(
                f"blocks.{block}.hook_{kind}: shape {tensor.shape}, expected {expected} for "
                f"{layout.n_layers} layers × {layout.n_heads} heads "
                + (
                    "(scores per token position are not edges' scores)"
                    if tensor.ndim > len(expected)
                    else ""
                )
            )
        if not np.isfinite(tensor).all():
            raise InvalidGraphError(f"blocks.{block}.hook_{kind}: NaN or infinite scores")
        scores[:width, columns] = tensor.reshape(len(columns), width).T
    forward, backward = layout.edges()
    document_json = {
        "cfg": {
            "n_layers": layout.n_layers,
            "n_heads": layout.n_heads,
            "parallel_attn_mlp": layout.parallel_attn_mlp,
        },
        "nodes": {name: {"in_graph": False} for name in layout.node_names},
        "edges": {
            layout.edge_name(f, k): {"score": float(scores[f, k]), "in_graph": False}
            for f, k in zip(forward, backward)
        },
    }
    graph = parse_eap_ig(document_json, path, graph_id)
    metadata = graph.metadata.model_copy(
        update={
            "method": "auto-circuit",
            "source_tool": "auto-circuit",
            "source_format": FORMAT_NAME,
        }
    )
    return CircuitGraph(graph.nodes, graph.edges, metadata)


def _layout(modules: dict[tuple[int, str], np.ndarray]) -> ComponentGraph:
    """The component graph the file's modules and shapes describe."""
    ends = [block for block, kind in modules if kind == "resid_post"]
    if len(ends) != 1:
        raise InvalidGraphError(
            "expected exactly one blocks.{L-1}.hook_resid_post (the logits' input), found "
            f"{len(ends)}"
        )
    n_layers = ends[0] + 1
    heads = [t.shape[0] for (_, kind), t in modules.items() if kind.endswith("_input") and t.ndim]
    if not heads or len(set(heads)) != 1:
        raise InvalidGraphError("the q/k/v input scores disagree on (or lack) the number of heads")
    has_mlps = any(kind == "mlp_in" for _, kind in modules)
    parallel = False
    if has_mlps:
        block, tensor = next((b, t) for (b, k), t in modules.items() if k == "mlp_in")
        parallel = tensor.shape[-1:] == (1 + block * (heads[0] + 1),)
    layout = ComponentGraph(n_layers, heads[0], has_mlps, parallel)
    expected = {(b, f"{c}_input") for b in range(n_layers) for c in CHANNELS}
    expected |= {(b, "mlp_in") for b in range(n_layers)} if has_mlps else set()
    expected.add((n_layers - 1, "resid_post"))
    if set(modules) != expected:
        missing = sorted(f"blocks.{b}.hook_{k}" for b, k in expected - set(modules))
        extra = sorted(f"blocks.{b}.hook_{k}" for b, k in set(modules) - expected)
        raise InvalidGraphError(
            f"not the modules of a {n_layers}-layer model: missing {missing[:4]}, "
            f"unexpected {extra[:4]}"
        )
    return layout


def _sniff(document: Any) -> bool:
    return (
        isinstance(document, dict)
        and bool(document)
        and all(isinstance(k, str) and _MODULE.fullmatch(k) for k in document)
    )


register(Importer(FORMAT_NAME, "auto-circuit PruneScores (.pt)", _sniff, parse_prune_scores))
