"""Turn a ``CircuitGraph`` into the property maps the database stores, and back.

Kept apart from the write paths so the bulk (embedded) and Bolt paths store exactly the same
properties, and the reader inverts one function instead of two.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from circuit_atlas.graph import KEY_FIELDS, CircuitGraph, GraphMetadata, NodeKind
from circuit_atlas.store.path_bounds import (
    PREFIX_PROPERTY,
    SUFFIX_PROPERTY,
    TARGET_INDEX_PROPERTY,
    TARGET_SUFFIX_PROPERTY,
    path_bounds,
    target_suffix_bounds,
)

UNKNOWN = "unknown"
# Metadata fields stored as top-level :Graph properties (scalars or lists of strings).
GRAPH_SCALARS = (
    "model",
    "prompt",
    "tokens",
    "method",
    "source_tool",
    "source_version",
    "source_format",
    "transcoder_set",
    "node_threshold",
    "edge_threshold",
    "created_at",
)


def _plain(value: Any) -> Any:
    """numpy/pandas scalars → Python; missing → None (Cypher has no NaN-as-null)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.ndarray):  # a list column read back from Parquet (the artifact)
        return [_plain(v) for v in value.tolist()]
    return value


def path_bound_properties(graph: CircuitGraph) -> list[dict[str, Any]]:
    """Per node, its derived path bounds as stored properties (``store/path_bounds.py``):
    always ``prefix_bound`` and ``suffix_bound``; on graphs where they are cheap, also
    ``target_suffix_bound`` on every node and ``target_index`` on each logit."""
    prefix, suffix = path_bounds(graph)
    rows: list[dict[str, Any]] = [
        {PREFIX_PROPERTY: p, SUFFIX_PROPERTY: s} for p, s in zip(prefix.tolist(), suffix.tolist())
    ]
    per_target = target_suffix_bounds(graph)
    if per_target is not None:
        targets, bounds = per_target
        for row, values in zip(rows, bounds.tolist()):
            row[TARGET_SUFFIX_PROPERTY] = values
        for index, node in enumerate(targets.tolist()):
            rows[node][TARGET_INDEX_PROPERTY] = index
    return rows


def _plain_column(column: pd.Series) -> list[Any]:
    """``_plain`` of every value of a column, converted a whole column at a time where its dtype
    allows (a per-value call cost 3 s on the 33k nodes of the analogy corpus)."""
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype) and not column.isna().any():
        return column.to_numpy(dtype=bool).tolist()
    if pd.api.types.is_integer_dtype(dtype):
        if not column.isna().any():
            return column.to_numpy(dtype=np.int64).tolist()
        return [None if missing else int(v) for v, missing in
                zip(column.to_numpy(dtype=np.int64, na_value=0).tolist(),
                    column.isna().tolist())]  # fmt: skip
    if pd.api.types.is_float_dtype(dtype):
        values = column.to_numpy(dtype=np.float64)
        return [None if v != v else v for v in values.tolist()]  # NaN → None
    return [_plain(v) for v in column.tolist()]


def node_property_rows(graph: CircuitGraph) -> list[dict[str, Any]]:
    """Per-node property maps, with the derived path bounds the path queries prune by."""
    nodes = graph.nodes_frame()
    gid = graph.graph_id
    bounds = path_bound_properties(graph)
    columns = [(str(name), _plain_column(nodes[name])) for name in nodes.columns]
    rows = []
    for i in range(len(nodes)):
        row: dict[str, Any] = {"graph_id": gid}
        for key, values in columns:
            value = values[i]
            if value is not None:
                row[key] = value
        row.update(bounds[i])
        rows.append(row)
    return rows


def edge_property_rows(graph: CircuitGraph) -> list[dict[str, Any]]:
    """Per-edge property maps (without endpoints); ``channel`` only when set."""
    edges = graph.edges
    extra = [c for c in edges.columns if c not in ("source", "target", "weight", "channel")]
    weights = edges["weight"].to_numpy(dtype=np.float64).tolist()
    channels = edges["channel"].tolist()
    columns = {c: edges[c].tolist() for c in extra}
    rows = []
    for i, weight in enumerate(weights):
        row: dict[str, Any] = {"weight": weight}
        if channels[i]:
            row["channel"] = channels[i]
        for c in extra:
            plain = _plain(columns[c][i])
            if plain is not None:
                row[c] = plain
        rows.append(row)
    return rows


def feature_identity(graph: CircuitGraph) -> tuple[str, str]:
    meta = graph.metadata
    return meta.model or UNKNOWN, meta.transcoder_set or UNKNOWN


def feature_rows(graph: CircuitGraph) -> list[dict[str, Any]]:
    """One row per feature node: its key and the ``:Feature`` identity it is an instance of."""
    model, transcoder_set = feature_identity(graph)
    keys = graph.keys()  # not nodes_frame(): a feature row needs no copy and no display ids
    chosen = np.flatnonzero((graph.nodes["kind"] == NodeKind.FEATURE.value).to_numpy())
    return [
        {
            "node_key": keys[row].encode(),
            "model": model,
            "transcoder_set": transcoder_set,
            "layer": keys[row].layer,
            "feature": keys[row].feature,
        }
        for row in chosen.tolist()
    ]


def graph_properties(graph: CircuitGraph, **extra: Any) -> dict[str, Any]:
    meta = graph.metadata
    props: dict[str, Any] = {"graph_id": meta.graph_id}
    for name in GRAPH_SCALARS:
        value = getattr(meta, name)
        if value is not None and value != []:
            props[name] = value
    props["metadata_json"] = meta.model_dump_json()
    props["n_nodes"] = graph.n_nodes
    props["n_edges"] = graph.n_edges
    props.update(extra)
    return props


def metadata_from_properties(props: dict[str, Any]) -> GraphMetadata:
    return GraphMetadata.model_validate(json.loads(props["metadata_json"]))


def graph_from_rows(
    metadata: GraphMetadata, node_rows: list[dict[str, Any]], edge_rows: list[dict[str, Any]]
) -> CircuitGraph:
    """Rebuild a graph from stored properties (inverse of the functions above)."""
    internal = {
        "graph_id",
        "node_key",
        "display_id",
        PREFIX_PROPERTY,
        SUFFIX_PROPERTY,
        TARGET_SUFFIX_PROPERTY,
        TARGET_INDEX_PROPERTY,
    }
    nodes = pd.DataFrame([{k: v for k, v in r.items() if k not in internal} for r in node_rows])
    for field in KEY_FIELDS[1:]:
        if field not in nodes.columns:
            nodes[field] = None
    order = {key: i for i, key in enumerate(r["node_key"] for r in node_rows)}
    edges = pd.DataFrame(
        [
            {
                "source": order[r["source_key"]],
                "target": order[r["target_key"]],
                **{k: v for k, v in r["props"].items()},
            }
            for r in edge_rows
        ],
        columns=None if edge_rows else ["source", "target", "weight", "channel"],
    )
    if "channel" not in edges.columns:
        edges["channel"] = ""
    return CircuitGraph(nodes, edges, metadata)
