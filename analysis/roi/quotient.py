"""The ROI-level quotient graph: one node per ROI, ROI → ROI edges with summed weights.

For ROIs of one graph, input tokens and logits stay as their own nodes, and so does every node no
ROI groups (an edge-profile run on a subgraph's pinned nodes leaves the rest out), so path
queries run at ROI granularity end to end (``strongest_paths`` from tokens to a logit through
ROIs). Edges
inside one ROI are not edges of the quotient; their summed |weight| is the ROI node's
``activation`` (its internal strength). For cross-prompt ROIs an edge is the summed weight
between member features' instances over all graphs, divided by the number of graphs (the mean
per prompt); there are no anchors.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from circuit_atlas.analysis.roi.affinity import ANCHORS, feature_id
from circuit_atlas.analysis.roi.detect import RoiResult
from circuit_atlas.graph import CircuitGraph, GraphMetadata, NodeKind


def _roi_nodes(result: RoiResult, internal: np.ndarray) -> pd.DataFrame:
    sizes = np.bincount(result.labels, minlength=result.n_rois)
    return pd.DataFrame(
        {
            "kind": NodeKind.ROI.value,
            "feature": np.arange(result.n_rois),
            "label": [f"ROI {i} ({sizes[i]} members)" for i in range(result.n_rois)],
            "activation": internal,
        }
    )


def _sum_edges(source: np.ndarray, target: np.ndarray, weight: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({"source": source, "target": target, "weight": weight})
    frame = frame[frame["source"] != frame["target"]]
    return frame.groupby(["source", "target"], as_index=False)["weight"].sum()


def quotient_graph(result: RoiResult, graphs: list[CircuitGraph], graph_id: str) -> CircuitGraph:
    """Build the quotient of ``graphs`` (the run's source graphs) under ``result``'s ROIs."""
    roi_of = dict(zip(result.affinity.ids, result.labels.tolist()))
    n_rois = result.n_rois
    internal = np.zeros(n_rois)
    if result.affinity.scope == "graph":
        graph = graphs[0]
        keys = [k.encode() for k in graph.keys()]
        kinds = graph.nodes["kind"].to_numpy(dtype=object)
        anchors = np.flatnonzero(
            [kind in ANCHORS or key not in roi_of for kind, key in zip(kinds, keys)]
        )
        anchor_nodes = graph.nodes.iloc[anchors].reset_index(drop=True)
        node_of = np.full(len(keys), -1, dtype=np.int64)
        node_of[anchors] = n_rois + np.arange(len(anchors))
        for i, key in enumerate(keys):
            if key in roi_of:
                node_of[i] = roi_of[key]
        src = node_of[graph.edges["source"].to_numpy()]
        dst = node_of[graph.edges["target"].to_numpy()]
        weights = graph.edges["weight"].to_numpy()
        same = (src == dst) & (src < n_rois)
        np.add.at(internal, src[same], np.abs(weights[same]))
        edges = _sum_edges(src, dst, weights)
        nodes = pd.concat([_roi_nodes(result, internal), anchor_nodes], ignore_index=True)
    else:
        parts = []
        for graph in graphs:
            feature_ids = [
                feature_id(layer, index) if kind == NodeKind.FEATURE.value else None
                for kind, layer, index in zip(
                    graph.nodes["kind"], graph.nodes["layer"], graph.nodes["feature"]
                )
            ]
            node_of = np.array([roi_of.get(f, -1) if f else -1 for f in feature_ids])
            src = node_of[graph.edges["source"].to_numpy()]
            dst = node_of[graph.edges["target"].to_numpy()]
            keep = (src >= 0) & (dst >= 0)
            weights = graph.edges["weight"].to_numpy()[keep] / len(graphs)
            same = src[keep] == dst[keep]
            np.add.at(internal, src[keep][same], np.abs(weights[same]))
            parts.append(_sum_edges(src[keep], dst[keep], weights))
        edges = pd.concat(parts).groupby(["source", "target"], as_index=False)["weight"].sum()
        nodes = _roi_nodes(result, internal)
    edges = edges[edges["weight"] != 0]
    first = graphs[0].metadata
    metadata = GraphMetadata(
        graph_id=graph_id,
        model=first.model,
        transcoder_set=first.transcoder_set,
        tokens=first.tokens if result.affinity.scope == "graph" else [],
        prompt=first.prompt if result.affinity.scope == "graph" else None,
        method=f"roi-quotient/{result.method}",
        source_tool="circuit-atlas roi",
        extra={"run_id": result.run_id, "sources": sorted(result.affinity.graph_ids)},
    )
    return CircuitGraph(nodes, edges, metadata)
