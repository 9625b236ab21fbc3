"""Exact per-graph aggregates, computed once at write time so whole-graph queries stay fast.

Three named queries used to read every edge of a graph (or every feature of every graph) on each
call: on a 20k-node / 1M-edge graph ``top_edges_per_layer_pair`` took 24 s,
``error_share_per_layer`` 1.1 s and ``feature_jaccard`` 7.6 s. What they compute depends on the
graph alone, so the store derives it when it writes the graph and the queries read a few hundred
small rows instead::

    (:GraphSummary {graph_id, version, feature_scope, feature_codes, wide_feature_codes,
                    layers, error_weight, feature_weight, node_keys})
    (:LayerPair {graph_id, source_layer, target_layer, n_edges, sources, targets, weights})

* ``feature_codes``: the graph's distinct transcoder features as integers
  ``layer · 2³² + feature``, sorted (integers group 20–30 % faster than strings in
  ``feature_jaccard``); a feature index that does not fit in 32 bits (never seen, but a file may
  say so) goes to ``wide_feature_codes`` as the string ``"layer:feature"`` instead, so every
  code stays exact and each feature always gets the same kind of code;
  ``feature_scope`` names the :Feature identity's model and transcoder set (``rows.py``), so two
  graphs share a code only when they share the :Feature node.
* ``layers`` / ``error_weight`` / ``feature_weight``: per layer, the summed |weight| of the
  edges leaving its ``error`` and ``feature`` nodes (layers with such edges only; both kinds
  always have a layer).
* one ``:LayerPair`` per (source layer, target layer) with edges, a node without a layer (an
  input token) counting as layer -1: its ``TOP_EDGES_KEPT`` strongest edges by |weight|, ties
  by source then target node key, as parallel lists; ``sources``/``targets`` are positions in
  the summary's ``node_keys`` (integers travel and store far cheaper than key strings: a corpus
  batch's summaries took 1.8 s as strings).

They are exact, not estimates: the tests compare every query with the edge-by-edge Cypher it
replaced. Graphs stored by an older version lack them; ``circuit-atlas upgrade`` adds them and the
queries that need them say so instead of answering wrongly (``queries/library.py``).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from circuit_atlas.graph import CircuitGraph, NodeKind
from circuit_atlas.store.rows import feature_identity

SUMMARY_VERSION = 3
TOP_EDGES_KEPT = 100  # the most `top_edges_per_layer_pair` returns per layer pair (its k)
NO_LAYER = -1  # the layer the queries give a node without one (input tokens)

GRAPH_SUMMARY = "GraphSummary"
LAYER_PAIR = "LayerPair"

WRITE_SUMMARIES = "UNWIND $rows AS row CREATE (s:GraphSummary) SET s = row"
WRITE_LAYER_PAIRS = "UNWIND $rows AS row CREATE (p:LayerPair) SET p = row"
DELETE_SUMMARIES = (
    "MATCH (s:GraphSummary {graph_id: $gid}) DETACH DELETE s",
    "MATCH (p:LayerPair {graph_id: $gid}) DETACH DELETE p",
)
HAS_SUMMARY = (
    "MATCH (s:GraphSummary {graph_id: $gid}) WHERE s.version >= $version RETURN s.version AS v"
)
# Ready graphs without a current summary: written before summaries existed, or by a version
# that kept an older layout of them (see ``upgrade``).
GRAPHS_WITHOUT_SUMMARY = (
    "MATCH (g:Graph) WHERE g.status = 'ready' "
    "OPTIONAL MATCH (s:GraphSummary {graph_id: g.graph_id}) "
    "WITH g, s WHERE s IS NULL OR coalesce(s.version, 0) < $version "
    "RETURN g.graph_id AS gid ORDER BY gid"
)


CODE_BASE = 2**32


def _fits(feature: int) -> bool:
    return 0 <= feature < CODE_BASE


def _node_layers(graph: CircuitGraph) -> np.ndarray:
    layers = graph.nodes["layer"]
    return layers.fillna(NO_LAYER).to_numpy(dtype=np.int64)


def graph_summary(graph: CircuitGraph) -> dict[str, Any]:
    """The ``:GraphSummary`` properties of ``graph`` (see the module docstring)."""
    nodes = graph.nodes
    kinds = nodes["kind"].to_numpy(dtype=object)
    is_feature = kinds == NodeKind.FEATURE.value
    pairs = {
        (int(layer), int(feature))
        for layer, feature in zip(nodes["layer"][is_feature], nodes["feature"][is_feature])
    }
    codes = [layer * CODE_BASE + feature for layer, feature in sorted(pairs) if _fits(feature)]
    wide = [f"{layer}:{feature}" for layer, feature in sorted(pairs) if not _fits(feature)]

    layers = _node_layers(graph)
    source = graph.edges["source"].to_numpy(dtype=np.int64)
    strength = np.abs(graph.edges["weight"].to_numpy(dtype=np.float64))
    source_kind = kinds[source]
    sums: dict[str, np.ndarray] = {}
    present = np.zeros(0, dtype=np.int64)
    for kind in (NodeKind.ERROR.value, NodeKind.FEATURE.value):
        chosen = source_kind == kind
        sums[kind] = np.bincount(
            layers[source[chosen]] - NO_LAYER, weights=strength[chosen], minlength=1
        )
        present = np.union1d(present, np.unique(layers[source[chosen]]))
    width = max(len(v) for v in sums.values())
    padded = {k: np.pad(v, (0, width - len(v))) for k, v in sums.items()}
    index = present - NO_LAYER
    return {
        "graph_id": graph.graph_id,
        "version": SUMMARY_VERSION,
        "feature_scope": json.dumps(list(feature_identity(graph))),
        "feature_codes": codes,
        "wide_feature_codes": wide,
        "layers": present.tolist(),
        "error_weight": padded[NodeKind.ERROR.value][index].tolist(),
        "feature_weight": padded[NodeKind.FEATURE.value][index].tolist(),
        "node_keys": [key.encode() for key in graph.keys()],
    }


def layer_pair_rows(graph: CircuitGraph, kept: int = TOP_EDGES_KEPT) -> list[dict[str, Any]]:
    """One ``:LayerPair`` row per layer pair with edges: its ``kept`` strongest edges."""
    edges = graph.edges
    if not len(edges):
        return []
    keys = np.array([key.encode() for key in graph.keys()], dtype=object)
    rank = np.empty(len(keys), dtype=np.int64)
    rank[np.argsort(keys.astype(str), kind="stable")] = np.arange(len(keys))
    layers = _node_layers(graph)
    source = edges["source"].to_numpy(dtype=np.int64)
    target = edges["target"].to_numpy(dtype=np.int64)
    weight = edges["weight"].to_numpy(dtype=np.float64)
    source_layer, target_layer = layers[source], layers[target]
    width = int(layers.max()) - NO_LAYER + 1
    pair = (source_layer - NO_LAYER) * width + (target_layer - NO_LAYER)
    order = np.lexsort((rank[target], rank[source], -np.abs(weight), pair))
    ordered_pair = pair[order]
    starts = np.flatnonzero(np.r_[True, ordered_pair[1:] != ordered_pair[:-1]])
    stops = np.r_[starts[1:], len(order)]
    rows = []
    for start, stop in zip(starts.tolist(), stops.tolist()):
        top = order[start : min(stop, start + kept)]
        first = top[0]
        rows.append(
            {
                "graph_id": graph.graph_id,
                "source_layer": int(source_layer[first]),
                "target_layer": int(target_layer[first]),
                "n_edges": stop - start,
                "sources": source[top].tolist(),
                "targets": target[top].tolist(),
                "weights": weight[top].tolist(),
            }
        )
    return rows


def write_summaries(run: Any, graph: CircuitGraph, fresh: bool = False) -> None:
    """Replace ``graph``'s summaries with ``run`` (a statement runner), in its transaction;
    ``fresh``: the graph was just claimed and emptied, so there are none to delete."""
    write_many_summaries(run, [graph], fresh)


def write_many_summaries(run: Any, graphs: list[CircuitGraph], fresh: bool = False) -> None:
    """``write_summaries`` for several graphs in a few statements (a corpus batch's)."""
    if not fresh:
        for graph in graphs:
            for statement in DELETE_SUMMARIES:
                run(statement, {"gid": graph.graph_id})
    run(WRITE_SUMMARIES, {"rows": [graph_summary(graph) for graph in graphs]})
    rows = [row for graph in graphs for row in layer_pair_rows(graph)]
    for start in range(0, len(rows), 1000):
        run(WRITE_LAYER_PAIRS, {"rows": rows[start : start + 1000]})
