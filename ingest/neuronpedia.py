"""Neuronpedia / circuit-tracer attribution-graph JSON (both exporter generations).

Format facts this importer relies on (checked against the real files in shared/data):

* ``metadata.schema_version == 1`` (circuit-tracer 0.2+): a feature node's ``feature`` is
  ``cantor(layer, index)``. Older "1.0.0" exports (no ``schema_version``) store
  ``layer * 100_000 + index`` (which reads as the raw index on layer 0): checked on every
  feature of the four real 1.0.0 files against the index inside their ``node_id``.
* ``node_id`` is **not unique**: in ``dollar.json`` ``"0_2_1"`` names both feature #2 at layer 0,
  position 1 and the error node of layer 2, position 1. Identity here is the typed
  ``NodeKey``; links, which only carry ``node_id`` strings, are resolved to nodes by
  :func:`resolve_links` and never by string lookup alone.
* circuit-tracer writes links target by target in adjacency order (features, errors, tokens,
  logits), sources ascending within each target. That order, plus the fact that error and
  embedding nodes never receive edges and logits never send them, decides every ambiguous link;
  a link that is still ambiguous is an error, never a guess.

What is refused (each as a one-line error naming the field), beyond the JSON reader's checks:

* non-finite ``activation``/``influence``/link ``weight``; ``token_prob`` outside [0, 1];
* an empty ``metadata.prompt_tokens``, and a ``ctx_idx`` that is not a position of them;
* layers outside the model: the file states no ``n_layers``, but circuit-tracer puts every
  logit node at layer ``n_layers + 1`` (``Node.logit_node``; 27 for 26-layer gemma-2-2b), so
  feature and error layers must lie below the logit layer (one layer of slack, for exporters
  that put logits at ``n_layers``); logits that disagree on their layer, negative layers and
  layers beyond ``MAX_LAYERS + 1`` are refused too;
* negative feature codes (the cantor decoding needs a natural number) and vocabulary ids;
* self-loops: an attribution graph has none by construction (an edge runs from a node to a
  later layer or to a logit), so a link whose source and target are one node is refused.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.graph import (
    CircuitGraph,
    GraphMetadata,
    NodeKind,
    nodes_from_records,
    shown,
)
from circuit_atlas.ingest.importers import MAX_LAYERS, Importer, register

FORMAT_NAME = "neuronpedia"
# metadata.extra key holding what the file says beyond the graph (see ``kept_fields``).
NEURONPEDIA_EXTRA = "neuronpedia"
MAPPED_METADATA = {"slug", "scan", "prompt", "prompt_tokens", "schema_version", "info",
                   "pruning_settings"}  # fmt: skip
MAPPED_INFO = {"generator", "transcoder_set", "create_time_ms"}
MAPPED_GENERATOR = {"name", "version"}
MAPPED_PRUNING = {"node_threshold", "edge_threshold"}

FEATURE_TYPES: dict[str, NodeKind] = {
    "cross layer transcoder": NodeKind.FEATURE,
    "per layer transcoder": NodeKind.FEATURE,
    "transcoder": NodeKind.FEATURE,
    "mlp reconstruction error": NodeKind.ERROR,
    "embedding": NodeKind.EMBEDDING,
    "logit": NodeKind.LOGIT,
}


class NeuronpediaNode(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)

    node_id: str
    feature: int | None
    layer: str | int
    ctx_idx: int = Field(ge=0)
    feature_type: Literal[
        "cross layer transcoder",
        "per layer transcoder",
        "transcoder",
        "mlp reconstruction error",
        "embedding",
        "logit",
    ]
    # Strict floats accept ints (real files write ``"token_prob": 0``); never NaN or infinity.
    token_prob: float | None = Field(0.0, ge=0, le=1)
    is_target_logit: bool | None = False
    clerp: str | None = ""
    influence: float | None = None
    activation: float | None = None


class NeuronpediaLink(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow", allow_inf_nan=False)

    source: str
    target: str
    weight: float | int


class NeuronpediaGenerator(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str | None = None
    version: str | None = None


class NeuronpediaInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    generator: NeuronpediaGenerator | None = None
    transcoder_set: str | None = None
    neuronpedia_source_set: str | None = None
    # Bounded so the timestamp converts (year 1970 to 9999) instead of overflowing.
    create_time_ms: int | None = Field(None, ge=0, le=253_402_300_799_999)


class NeuronpediaMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    slug: str = Field(min_length=1)
    scan: str
    prompt: str | None = None
    prompt_tokens: list[str] = Field(min_length=1)
    schema_version: int | None = None
    node_threshold: float | None = None
    info: NeuronpediaInfo = Field(default_factory=NeuronpediaInfo)
    pruning_settings: dict[str, Any] | None = None


class NeuronpediaGraphFile(BaseModel):
    """The versioned schema of one file; ``metadata.schema_version`` selects feature decoding."""

    model_config = ConfigDict(extra="allow")
    metadata: NeuronpediaMetadata
    nodes: list[NeuronpediaNode] = Field(min_length=1)
    links: list[NeuronpediaLink]


def cantor_pair(a: int, b: int) -> int:
    return (a + b) * (a + b + 1) // 2 + b


def cantor_unpair(z: int) -> tuple[int, int]:
    """Inverse of :func:`cantor_pair`, exact for arbitrarily large integers."""
    w = (math.isqrt(8 * z + 1) - 1) // 2
    b = z - w * (w + 1) // 2
    return w - b, b


LEGACY_LAYER_STRIDE = 100_000


def decode_feature_index(code: int, layer: int, schema_version: int | None) -> int:
    """The transcoder feature index of a feature node, from either exporter generation."""
    if code < 0:
        raise InvalidGraphError(f"code {code} is negative; feature codes are natural numbers")
    if schema_version is not None and schema_version >= 1:
        decoded_layer, index = cantor_unpair(code)
        if decoded_layer != layer:
            raise InvalidGraphError(
                f"cantor code {code} decodes to layer {decoded_layer}, not the node's {layer}"
            )
        return index
    encoded_layer, index = divmod(code, LEGACY_LAYER_STRIDE)
    if encoded_layer != layer:
        raise InvalidGraphError(
            f"code {code} encodes layer {encoded_layer}, not the node's {layer}"
        )
    return index


def _layer_number(index: int, value: str | int) -> int | None:
    """The layer as a number (``None`` for a non-numeric one such as an embedding's ``"E"``)."""
    if isinstance(value, str):
        digits = value.removeprefix("-")
        if not (digits.isascii() and digits.isdigit()):
            return None
        if len(digits) > 6:  # int() of a 100,000-digit string is slow, then refused anyway
            raise InvalidGraphError(f"nodes[{index}].layer: {value[:20]}… is not a layer number")
        value = int(value)
    if not 0 <= value <= MAX_LAYERS + 1:
        raise InvalidGraphError(
            f"nodes[{index}].layer: {value} is outside [0, {MAX_LAYERS + 1}] "
            f"(at most {MAX_LAYERS} layers, logits at n_layers + 1)"
        )
    return value


def _node_record(
    index: int, node: NeuronpediaNode, schema_version: int | None, tokens: list[str]
) -> dict[str, Any]:
    kind = FEATURE_TYPES[node.feature_type]
    layer = _layer_number(index, node.layer)
    if node.ctx_idx >= len(tokens):
        raise InvalidGraphError(
            f"nodes[{index}].ctx_idx: position {node.ctx_idx} is not one of the prompt's "
            f"{len(tokens)} tokens (metadata.prompt_tokens)"
        )
    feature: int | None = None
    if kind == NodeKind.FEATURE:
        if layer is None or node.feature is None:
            raise InvalidGraphError(
                f"nodes[{index}]: a feature node needs a numeric layer and feature"
            )
        try:
            feature = decode_feature_index(node.feature, layer, schema_version)
        except InvalidGraphError as exc:
            raise InvalidGraphError(f"nodes[{index}].feature: {exc}") from None
    elif kind == NodeKind.LOGIT:
        feature = node.feature
        if feature is None:
            raise InvalidGraphError(f"nodes[{index}].feature: a logit node needs its token id")
        if feature < 0:
            raise InvalidGraphError(f"nodes[{index}].feature: token id {feature} is negative")
    elif kind == NodeKind.ERROR and layer is None:
        raise InvalidGraphError(f"nodes[{index}].layer: an error node needs a numeric layer")
    if kind == NodeKind.EMBEDDING:
        layer = None
    return {
        "kind": kind.value,
        "layer": layer,
        "pos": node.ctx_idx,
        "feature": feature,
        "head": None,
        "activation": node.activation,
        "influence": node.influence,
        "label": node.clerp or None,
        "token": tokens[node.ctx_idx],
        "token_prob": node.token_prob,
        "is_target_logit": bool(node.is_target_logit),
        "source_id": node.node_id,
    }


def _resolve_runs(
    candidates: list[list[int]], strict: bool, what: str, offset: int = 0
) -> list[int]:
    """Pick one candidate per position so the sequence is monotone (strictly if ``strict``).

    Only runs of ambiguous positions are decided, bounded by their unambiguous neighbours. The
    leftmost and rightmost feasible choices are computed; if they differ the order does not
    decide the run and we refuse to guess.
    """
    chosen = [c[0] if len(c) == 1 else -1 for c in candidates]
    n = len(candidates)
    i = 0
    while i < n:
        if chosen[i] != -1:
            i += 1
            continue
        j = i
        while j < n and chosen[j] == -1:
            j += 1
        low = chosen[i - 1] if i > 0 else -1
        high = chosen[j] if j < n else 1 << 62
        left, right = [], []
        prev = low
        for k in range(i, j):
            ok = [c for c in candidates[k] if (c > prev if strict else c >= prev)]
            if not ok:
                break
            prev = min(ok)
            left.append(prev)
        nxt = high
        for k in range(j - 1, i - 1, -1):
            ok = [c for c in candidates[k] if (c < nxt if strict else c <= nxt)]
            if not ok:
                break
            nxt = max(ok)
            right.append(nxt)
        right.reverse()
        if len(left) != j - i or len(right) != j - i or left != right:
            raise InvalidGraphError(
                f"links[{offset + i}].{what}: node id is ambiguous and link order "
                "does not decide which node it names"
            )
        chosen[i:j] = left
        i = j
    return chosen


def resolve_links(
    node_ids: list[str], kinds: list[str], links: list[NeuronpediaLink]
) -> tuple[np.ndarray, np.ndarray]:
    """Map each link's ``source``/``target`` string to a node row (see module docstring)."""
    rows_by_id: dict[str, list[int]] = {}
    for row, node_id in enumerate(node_ids):
        rows_by_id.setdefault(node_id, []).append(row)
    cannot_receive = {NodeKind.ERROR.value, NodeKind.EMBEDDING.value}
    cannot_send = {NodeKind.LOGIT.value}

    def candidates(end: str, banned: set[str]) -> list[list[int]]:
        out = []
        for i, link in enumerate(links):
            name = getattr(link, end)
            rows = rows_by_id.get(name)
            if rows is None:
                raise InvalidGraphError(f"links[{i}].{end}: {name!r} is not the id of any node")
            if len(rows) > 1:
                rows = [r for r in rows if kinds[r] not in banned] or rows
            out.append(rows)
        return out

    target_rows = np.asarray(
        _resolve_runs(candidates("target", cannot_receive), False, "target"), dtype=np.int64
    )
    source_cands = candidates("source", cannot_send)
    source_rows = np.empty(len(links), dtype=np.int64)
    start = 0
    while start < len(links):
        stop = start
        while stop < len(links) and target_rows[stop] == target_rows[start]:
            stop += 1
        group = source_cands[start:stop]
        if any(len(c) > 1 for c in group):
            resolved = _resolve_runs(group, True, "source", offset=start)
        else:
            resolved = [c[0] for c in group]
        source_rows[start:stop] = resolved
        start = stop
    return source_rows, target_rows


def check_layers(records: list[dict[str, Any]]) -> None:
    """Feature and error layers lie below the logit nodes' layer, the file's bound on depth.

    circuit-tracer writes every logit node at layer ``n_layers + 1`` (see the module
    docstring); a file without numeric logit layers states no bound and is only checked
    against ``MAX_LAYERS``.
    """
    logit_layers = {
        r["layer"]: i
        for i, r in enumerate(records)
        if r["kind"] == NodeKind.LOGIT.value and r["layer"] is not None
    }
    if not logit_layers:
        return
    if len(logit_layers) > 1:
        (a, _), (b, row) = sorted(logit_layers.items())[:2]
        raise InvalidGraphError(
            f"nodes[{row}].layer: logit nodes disagree on their layer ({a} and {b}); "
            "circuit-tracer puts every logit at n_layers + 1"
        )
    logit_layer = next(iter(logit_layers))
    for i, r in enumerate(records):
        inner = r["kind"] in (NodeKind.FEATURE.value, NodeKind.ERROR.value)
        if inner and not r["layer"] < logit_layer:
            raise InvalidGraphError(
                f"nodes[{i}].layer: layer {r['layer']} is not below the logit nodes' layer "
                f"{logit_layer} (n_layers + 1): the model has no such layer"
            )


def _unmapped(value: Any, mapped: set[str]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if k not in mapped} if isinstance(value, dict) else {}


def kept_fields(document: dict[str, Any]) -> dict[str, Any]:
    """What the file says that the graph has no column for — the viewer state ``qParams``
    (pinned ids, supernodes, link type), ``generation_settings``, the creator and links in
    ``info``, … — kept in ``metadata.extra["neuronpedia"]`` so the exporter
    (``circuit_atlas/exporters/neuronpedia.py``) writes the file back whole. It describes how the
    file presented the graph, not the graph, so ``content_hash`` leaves it out."""
    metadata = document["metadata"]
    info = metadata.get("info")
    kept = {
        "metadata": _unmapped(metadata, MAPPED_METADATA),
        "info": _unmapped(info, MAPPED_INFO),
        "generator": _unmapped(
            info.get("generator") if isinstance(info, dict) else None, MAPPED_GENERATOR
        ),  # fmt: skip
        "pruning_settings": _unmapped(metadata.get("pruning_settings"), MAPPED_PRUNING),
        "qParams": document.get("qParams") if isinstance(document.get("qParams"), dict) else {},
    }
    return {k: v for k, v in kept.items() if v}


def node_table(nodes: list[NeuronpediaNode], meta: NeuronpediaMetadata) -> pd.DataFrame:
    """The nodes table of a validated file (one implementation for both readers)."""
    tokens = list(meta.prompt_tokens)
    records = [_node_record(i, node, meta.schema_version, tokens) for i, node in enumerate(nodes)]
    check_layers(records)
    return nodes_from_records(records)


def parse_neuronpedia(document: Any, path: Path, graph_id: str | None = None) -> CircuitGraph:
    data = NeuronpediaGraphFile.model_validate(document)
    meta = data.metadata
    nodes = node_table(data.nodes, meta)
    sources, targets = resolve_links(
        [n.node_id for n in data.nodes], nodes["kind"].tolist(), data.links
    )
    loops = np.flatnonzero(sources == targets)
    if len(loops):
        i = int(loops[0])
        raise InvalidGraphError(
            f"links[{i}]: source and target are the same node {shown(data.links[i].source)}; an "
            "attribution graph has no self-loops"
        )
    edges = pd.DataFrame(
        {
            "source": sources,
            "target": targets,
            "weight": np.array([link.weight for link in data.links], dtype=np.float64),
        }
    )
    return CircuitGraph(nodes, edges, graph_metadata(meta, document, path, graph_id))


def graph_metadata(
    meta: NeuronpediaMetadata, document: dict[str, Any], path: Path, graph_id: str | None
) -> GraphMetadata:
    """The graph's metadata from the validated ``metadata`` and the file's own keys (only
    ``metadata`` and ``qParams`` are read from ``document``; see :func:`kept_fields`)."""
    info = meta.info
    generator = info.generator or NeuronpediaGenerator()
    created = None
    if info.create_time_ms is not None:
        created = datetime.fromtimestamp(info.create_time_ms / 1000, tz=timezone.utc).isoformat()
    pruning = meta.pruning_settings or {}
    return GraphMetadata(
        graph_id=graph_id or meta.slug,
        model=meta.scan,
        prompt=meta.prompt,
        tokens=list(meta.prompt_tokens),
        method="attribution-graph",
        source_tool=generator.name,
        source_version=generator.version,
        source_format=f"{FORMAT_NAME}/{meta.schema_version or '1.0.0'}",
        transcoder_set=info.transcoder_set or info.neuronpedia_source_set,
        node_threshold=pruning.get("node_threshold", meta.node_threshold),
        edge_threshold=pruning.get("edge_threshold"),
        created_at=created,
        extra={
            "source_file": path.name,
            "slug": meta.slug,
            NEURONPEDIA_EXTRA: kept_fields(document),
        },
    )


def _sniff(document: Any) -> bool:
    return isinstance(document, dict) and {"metadata", "nodes", "links"} <= document.keys()


def _stream(path: Path, detect: bool, graph_id: str | None) -> CircuitGraph | None:
    # Imported here: the streaming reader builds on this module's models.
    from circuit_atlas.ingest.neuronpedia_stream import stream_neuronpedia

    return stream_neuronpedia(path, graph_id, detect=detect)


register(
    Importer(
        FORMAT_NAME,
        "Neuronpedia / circuit-tracer graph JSON",
        _sniff,
        parse_neuronpedia,
        stream=_stream,
    )
)
