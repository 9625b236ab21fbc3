"""circuit-tracer's own graph files (``Graph.to_pt``): the *unpruned* attribution graph.

Neuronpedia JSON is what circuit-tracer writes after pruning; the ``.pt`` file is what it
attributes before pruning, so importing it gives the exact unpruned adjacency the scores are
defined on (``circuit-atlas score`` then reads it back from the artifact bit for bit).

Layout, as circuit-tracer documents it: rows are targets and columns sources, in the order
``[selected features, errors (layer-major, then position), tokens, logits]``; feature row ``i``
is ``active_features[selected_features[i]]`` = (layer, position, index), its activation
``activation_values[selected_features[i]]``; logits sit at the last position.

The file is torch.save's zip format, whose ``data.pkl`` is a pickle. It is read by
:func:`~circuit_atlas.ingest.safe_torch.load_torch_file`, never by ``torch.load``: only the zip
format is accepted (a plain pickle, torch's legacy or tar format, a TorchScript archive or any
other zip is refused before anything is unpickled, since those paths of ``torch.load`` unpickle
without restriction), and ``data.pkl`` goes through a restricted unpickler that accepts only
tensors, plain containers and circuit-tracer's record classes (stand-ins below, so circuit-tracer
need not be installed); any other object in the file is refused rather than executed.
"""

from __future__ import annotations

import copyreg
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.graph import CircuitGraph, GraphMetadata
from circuit_atlas.ingest.features.graph_layout import graph_from_adjacency
from circuit_atlas.ingest.importers import (
    PT_STAND_INS,
    Importer,
    file_stem,
    register,
    register_reader,
)
from circuit_atlas.ingest.safe_torch import load_torch_file

if TYPE_CHECKING:
    import torch

FORMAT_NAME = "circuit-tracer-pt"
REQUIRED_KEYS = frozenset(
    {"adjacency_matrix", "active_features", "selected_features", "input_tokens", "cfg"}
)


class LogitTarget(NamedTuple):
    """Stand-in for ``circuit_tracer.attribution.targets.LogitTarget`` (same fields)."""

    token_str: str
    vocab_idx: int


class RecordedConfig:
    """Stand-in for circuit-tracer's ``UnifiedConfig`` / TransformerLens's config: only the
    attributes (``n_layers``, ``model_name``, …) are kept; no code of theirs runs."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


_STAND_INS: dict[tuple[str, str], Any] = {
    ("circuit_tracer.attribution.targets", "LogitTarget"): LogitTarget,
    ("circuit_tracer.utils.tl_nnsight_mapping", "UnifiedConfig"): RecordedConfig,
    ("transformer_lens.HookedTransformerConfig", "HookedTransformerConfig"): RecordedConfig,
    # what pickle protocols 0 and 1 name to rebuild a plain object such as a config
    ("copyreg", "_reconstructor"): getattr(copyreg, "_reconstructor"),  # noqa: B009  (private)
    ("builtins", "object"): object,
}


def read_pt(path: Path) -> Any:
    """Load a ``.pt`` file safely, turning every failure into a one-line error naming the file.
    Files are read before their format is known, so every format's stand-ins are allowed
    (``PT_STAND_INS``: those other importers register, e.g. feature-circuits' ``SparseAct``)."""
    return load_torch_file(
        path,
        stand_ins={**_STAND_INS, **PT_STAND_INS},
        expected="part of a circuit-tracer or EAP-IG graph",
    )


def _tensor(document: dict[str, Any], key: str, ndim: int) -> torch.Tensor:
    import torch

    value = document.get(key)
    if not isinstance(value, torch.Tensor) or value.ndim != ndim:
        raise InvalidGraphError(f"{key}: expected a {ndim}-d tensor")
    return value.detach().to("cpu")


def _logit_targets(document: dict[str, Any], n_logits: int) -> list[LogitTarget]:
    import torch

    # circuit-tracer < 0.5 stored ``logit_tokens``/``logit_targets`` as a tensor of token ids.
    raw = document.get("logit_targets", document.get("logit_tokens"))
    if isinstance(raw, torch.Tensor):
        raw = [LogitTarget("", int(i)) for i in raw.tolist()]
    if not isinstance(raw, list) or len(raw) != n_logits:
        raise InvalidGraphError(
            f"logit_targets: expected {n_logits} entries (one per logit probability)"
        )
    return [LogitTarget(str(t[0]), int(t[1])) for t in raw]


def parse_circuit_tracer_pt(document: Any, path: Path, graph_id: str | None = None) -> CircuitGraph:
    import torch

    # Dense n × n: kept in its own dtype (bf16/fp16 widened to float32, which is exact) and
    # read only at its non-zero entries; only those become float64.
    adjacency = _tensor(document, "adjacency_matrix", 2)
    if adjacency.dtype in (torch.bfloat16, torch.float16):
        adjacency = adjacency.to(torch.float32)
    adjacency = adjacency.numpy()
    active = _tensor(document, "active_features", 2).to(torch.int64).numpy()
    selected = _tensor(document, "selected_features", 1).to(torch.int64).numpy()
    tokens = _tensor(document, "input_tokens", 1).to(torch.int64).numpy()
    probabilities = _tensor(document, "logit_probabilities", 1).to(torch.float64).numpy()
    activations = document.get("activation_values")
    cfg = document["cfg"]
    n_layers = getattr(cfg, "n_layers", None)
    if not isinstance(n_layers, int) or n_layers < 1:
        raise InvalidGraphError("cfg.n_layers: expected a positive integer")
    targets = _logit_targets(document, probabilities.size)
    scan = document.get("scan_name", document.get("scan"))
    model = getattr(cfg, "model_name", None)
    metadata = GraphMetadata(
        graph_id=graph_id or file_stem(path),
        model=model if isinstance(model, str) else None,
        prompt=document.get("input_string"),
        method="attribution-graph",
        source_tool="circuit-tracer",
        source_format=FORMAT_NAME,
        transcoder_set=scan if isinstance(scan, str) else None,
        extra={"source_file": path.name, "input_token_ids": tokens.tolist()},
    )
    return graph_from_adjacency(
        adjacency,
        active=active,
        selected=selected,
        activations=(
            activations.detach().to("cpu").to(torch.float64).numpy()
            if isinstance(activations, torch.Tensor)
            else None
        ),
        n_layers=n_layers,
        n_pos=tokens.size,
        logit_ids=[t.vocab_idx for t in targets],
        logit_tokens=[t.token_str for t in targets],
        logit_probabilities=probabilities.tolist(),
        metadata=metadata,
    )


def _sniff(document: Any) -> bool:
    return isinstance(document, dict) and document.keys() >= REQUIRED_KEYS


register_reader(".pt", read_pt)
register(
    Importer(
        FORMAT_NAME,
        "circuit-tracer Graph.to_pt file (the unpruned attribution graph)",
        _sniff,
        parse_circuit_tracer_pt,
    )
)
