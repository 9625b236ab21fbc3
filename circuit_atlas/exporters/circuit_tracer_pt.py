"""Write circuit-tracer's ``Graph.to_pt`` layout, which circuit-tracer's ``Graph.from_pt`` reads.

The file is what circuit-tracer 0.5.0 saves: ``torch.save`` of a dict with ``input_string``,
``input_tokens``, ``adjacency_matrix`` (float32, rows = targets, columns = sources, in the order
``[features, errors (layer-major), tokens, logits]``), ``cfg`` (a ``UnifiedConfig``),
``active_features`` [n, 3] (layer, position, index), ``activation_values``,
``selected_features``, ``logit_targets``, ``logit_probabilities``, ``vocab_size`` and ``scan``.

Two choices keep circuit-tracer out of this environment: ``logit_targets`` is written as a
tensor of token ids, which ``Graph.from_pt`` converts itself (its backward-compatibility path),
and ``cfg`` is pickled *by name* as ``circuit_tracer.utils.tl_nnsight_mapping.UnifiedConfig``
from a stand-in class with that name, so that circuit-tracer rebuilds its own class on load
(and this project's importer its stand-in, without running code).

Only attribution graphs have this layout: feature, error, embedding and logit nodes, and the
prompt's token ids (graphs attributed here, or imported from circuit-tracer ``.pt`` files).
Error and token nodes a graph lacks (a pruned Neuronpedia graph) are written as zero rows and
columns.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
from collections.abc import Generator
from pathlib import Path
from typing import Any

import numpy as np

from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.graph import CircuitGraph

CONFIG_MODULE = "circuit_tracer.utils.tl_nnsight_mapping"
CONFIG_CLASS = "UnifiedConfig"
CONFIG_FIELDS = (
    "n_layers", "d_model", "d_head", "n_heads", "d_mlp", "d_vocab", "tokenizer_name",
    "model_name", "original_architecture", "n_key_value_heads", "dtype",
)  # fmt: skip


class UnifiedConfig:
    """Pickled under circuit-tracer's name (see the module docstring); plain attributes."""

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update({name: fields.get(name) for name in CONFIG_FIELDS})


UnifiedConfig.__module__ = CONFIG_MODULE


def circuit_tracer_document(graph: CircuitGraph) -> dict[str, Any]:
    """The dict ``Graph.to_pt`` would save for ``graph``; ``InvalidGraphError`` if the graph
    has no such layout."""
    import torch

    nodes = graph.nodes_frame()
    kinds = set(nodes["kind"])
    if not kinds <= {"feature", "error", "embedding", "logit"} or "logit" not in kinds:
        raise InvalidGraphError(
            f"{graph.graph_id}: only attribution graphs (feature, error, embedding and logit "
            f"nodes) have circuit-tracer's layout; this one has {sorted(kinds)}"
        )
    token_ids = graph.metadata.extra.get("input_token_ids")
    if not isinstance(token_ids, list) or not token_ids:
        raise InvalidGraphError(
            f"{graph.graph_id}: the prompt's token ids are not recorded (graphs attributed by "
            "Circuit Atlas or imported from circuit-tracer .pt files carry them)"
        )
    n_pos = len(token_ids)
    layers = nodes.loc[nodes["kind"].isin(["feature", "error"]), "layer"].dropna()
    n_layers = int(layers.max()) + 1 if len(layers) else 0
    features = nodes[nodes["kind"] == "feature"].sort_values(["layer", "pos", "feature"])
    logits = nodes[nodes["kind"] == "logit"]
    n_feat, n_logits = len(features), len(logits)
    n = n_feat + (n_layers + 1) * n_pos + n_logits
    index = np.full(len(nodes), -1)
    index[features.index.to_numpy()] = np.arange(n_feat)
    for kind, offset in (("error", n_feat), ("embedding", n_feat + n_layers * n_pos)):
        part = nodes[nodes["kind"] == kind]
        layer = part["layer"].fillna(0).astype(int).to_numpy() if kind == "error" else 0
        pos = part["pos"].astype(int).to_numpy()
        if (pos < 0).any() or (pos >= n_pos).any():
            raise InvalidGraphError(
                f"{graph.graph_id}: a {kind} node's position is outside the prompt"
            )
        index[part.index.to_numpy()] = offset + layer * n_pos + pos
    index[logits.index.to_numpy()] = np.arange(n - n_logits, n)
    adjacency = np.zeros((n, n), dtype=np.float32)
    edges = graph.edges
    adjacency[index[edges["target"].to_numpy()], index[edges["source"].to_numpy()]] = edges[
        "weight"
    ].to_numpy()
    active = features[["layer", "pos", "feature"]].astype(np.int64).to_numpy()
    activations = (
        features["activation"].astype(float).fillna(0.0).to_numpy()
        if "activation" in features
        else np.zeros(n_feat)
    )
    meta = graph.metadata
    vocab = logits["feature"].astype(int).to_numpy()
    return {
        "input_string": meta.prompt or "",
        "input_tokens": torch.tensor(token_ids, dtype=torch.long),
        "adjacency_matrix": torch.from_numpy(adjacency),
        "cfg": UnifiedConfig(
            n_layers=n_layers, model_name=meta.model, tokenizer_name=meta.model, d_vocab=None
        ),
        "active_features": torch.from_numpy(active.reshape(-1, 3)),
        "activation_values": torch.from_numpy(activations.astype(np.float64)),
        "selected_features": torch.arange(n_feat, dtype=torch.long),
        "logit_targets": torch.from_numpy(vocab.astype(np.int64)),
        "logit_probabilities": torch.tensor(
            logits["token_prob"].astype(float).fillna(0.0).to_numpy(), dtype=torch.float64
        ),
        "vocab_size": int(vocab.max()) + 1 if len(vocab) else 0,
        "scan": meta.transcoder_set,
    }


def write_circuit_tracer_pt(graph: CircuitGraph, path: Path) -> Path:
    """Save ``graph`` as circuit-tracer's ``.pt`` at ``path`` (written to a temporary name
    first, so a failed write leaves no partial file)."""
    import torch

    document = circuit_tracer_document(graph)
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    with _config_class_importable() as config_class:
        config = object.__new__(config_class)
        config.__dict__.update(vars(document["cfg"]))
        document["cfg"] = config
        torch.save(document, partial)
    partial.replace(path)
    return path


@contextlib.contextmanager
def _config_class_importable() -> Generator[type[Any], None, None]:
    """The class to pickle ``cfg`` as, importable under circuit-tracer's name while pickling
    (pickle checks that): circuit-tracer's own where it is installed, else the stand-in, under
    temporary module entries removed afterwards."""
    if importlib.util.find_spec("circuit_tracer") is not None:
        yield getattr(importlib.import_module(CONFIG_MODULE), CONFIG_CLASS)
        return
    names = ["circuit_tracer", "circuit_tracer.utils", CONFIG_MODULE]
    added = [name for name in names if name not in sys.modules]
    for name in added:
        sys.modules[name] = types.ModuleType(name)
    setattr(sys.modules[CONFIG_MODULE], CONFIG_CLASS, UnifiedConfig)
    try:
        yield UnifiedConfig
    finally:
        for name in added:
            sys.modules.pop(name, None)
