"""Hand a graph's nodes and edges to the embedded engine as JSON text written here.

Why: ``GraphBatch`` already sends rows to the engine as JSON, but first checks every property
value of every row in Python, and takes a much slower per-value path for any value that is not
a scalar. Our rows are known in advance, so the checks are ours to make:

* Nodes carry their path bounds as lists of floats, which sent ``create_vertices`` down its
  per-value path (1.6 s of a 13 s ingest of a 20k-node / 1M-edge graph). Lists of finite
  floats are plain JSON, so the rows go to the engine's JSON entry point when every value is
  a JSON-safe scalar or such a list.
* Edges carry a finite float ``weight`` and an optional ``channel`` string. ``new_edges``
  rebuilt and checked each row in Python (about 1 s of the same ingest); here the JSON text is
  formatted directly (``repr`` of a finite float is exact JSON, as in ``json.dumps``).

Both call the entry points the package itself uses (``VertexBatcher.createVerticesJson``,
``EdgeBatcher.newEdgesJson``); anything else (another value type, extra edge columns, a build
without the bridge classes) goes through the package's public methods unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from circuit_atlas.graph import CircuitGraph
from circuit_atlas.store.rows import edge_property_rows

CHUNK = 100_000  # rows per crossing into the engine, as in the package's own bulk path
INT64 = 2**63


def _bridge(name: str) -> Any | None:
    from arcadedb_embedded.results import _bridge_class

    return _bridge_class(name)


def _utf8_encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON would change it
        return False
    return True


def rows_json(rows: list[dict[str, Any]]) -> str | None:
    """The JSON text of ``rows`` when JSON carries every value to the engine unchanged, else None.

    Unchanged means: str keys; values None, bool, a 64-bit int, a finite float, a UTF-8
    encodable str, or a list of finite floats (the path bounds). The type checks are inline, not
    a call per value, because a 20k-node graph has 280k values; NaN and infinity are caught by
    ``allow_nan=False``.
    """
    if any(type(key) is not str for key in set().union(*rows)):
        return None
    for row in rows:
        for value in row.values():
            kind = type(value)
            if kind is float or kind is bool or value is None:
                continue
            if kind is int and -INT64 <= value < INT64:
                continue
            if kind is str and (value.isascii() or _utf8_encodable(value)):
                continue
            if kind is list and all(type(x) is float for x in value):
                continue
            return None
    try:
        return json.dumps(rows, allow_nan=False)
    except ValueError:  # NaN or infinity
        return None


def create_vertices(batch: Any, type_name: str, rows: list[dict[str, Any]]) -> list[str]:
    """``batch.create_vertices(type_name, rows)``, through JSON whenever every value allows."""
    batcher = _bridge("VertexBatcher")
    chunks = [rows_json(rows[start : start + CHUNK]) for start in range(0, len(rows), CHUNK)]
    if batcher is None or any(chunk is None for chunk in chunks):
        return batch.create_vertices(type_name, rows)
    java_db = batch._java_db
    owns_transaction = not java_db.isTransactionActive()
    rids: list[str] = []
    try:
        for chunk in chunks:
            joined = str(batcher.createVerticesJson(batch._java_graph_batch, type_name, chunk))
            if joined:
                rids.extend(joined.split(";"))
    except BaseException:
        # as the package does: a failed call must not leave the engine's transaction open
        if owns_transaction and java_db.isTransactionActive():
            java_db.rollback()
        raise
    return rids


def edge_json_rows(
    sources: Sequence[str],
    targets: Sequence[str],
    weights: Sequence[float],
    channels: Sequence[str],
) -> list[str]:
    """One JSON object per edge, as the engine's bulk edge path reads them."""
    quoted = {c: json.dumps(c) for c in set(channels) if c}
    return [
        f'{{"_src":"{s}","_dst":"{t}","weight":{w!r}' + (f',"channel":{quoted[c]}}}' if c else "}")
        for s, t, w, c in zip(sources, targets, weights, channels)
    ]


def buffer_edges(
    batch: Any,
    edge_type: str,
    sources: Sequence[str],
    targets: Sequence[str],
    graph: CircuitGraph,
    advance: Callable[[int], Any],
) -> None:
    """Buffer every edge of ``graph`` (``sources[i] → targets[i]`` as RIDs) in ``batch``."""
    edges = graph.edges
    weights = edges["weight"].to_numpy(dtype=np.float64)
    channels = edges["channel"].tolist()
    plain = set(edges.columns) <= {"source", "target", "weight", "channel"}
    plain = plain and np.isfinite(weights).all()
    plain = plain and all(type(c) is str and _utf8_encodable(c) for c in set(channels))
    batcher = _bridge("EdgeBatcher") if plain else None
    if batcher is None:
        rows = edge_property_rows(graph)
        for start in range(0, len(rows), CHUNK):
            stop = min(start + CHUNK, len(rows))
            batch.new_edges(sources[start:stop], edge_type, targets[start:stop], rows[start:stop])
            advance(stop - start)
        return
    weight_list = weights.tolist()
    for start in range(0, len(weight_list), CHUNK):
        stop = min(start + CHUNK, len(weight_list))
        text = edge_json_rows(
            sources[start:stop], targets[start:stop], weight_list[start:stop], channels[start:stop]
        )
        batcher.newEdgesJson(batch._java_graph_batch, edge_type, "[" + ",".join(text) + "]")
        advance(stop - start)
