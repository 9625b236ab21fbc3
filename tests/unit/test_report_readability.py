"""Reports people can read: heatmaps in one shared row order, and token text for labels."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from circuit_atlas.analysis.compare.pairwise import Comparison
from circuit_atlas.analysis.compare.report import (
    cluster_order,
    comparison_html,
    heatmap_matrices,
    shared_order,
)


def comparison() -> Comparison:
    """Five graphs whose Jaccard and weighted-overlap similarities cluster differently."""
    ids = ("a", "b", "c", "d", "e")
    rng = np.random.default_rng(0)
    rows = []
    for i, x in enumerate(ids):
        for y in ids[i + 1 :]:
            rows.append(
                {
                    "graph_a": x, "graph_b": y, "shared": 1, "size_a": 2, "size_b": 2,
                    "jaccard": rng.random(), "weighted_overlap": rng.random(),
                    "influence_overlap": float("nan"),
                }
            )  # fmt: skip
    return Comparison("node", ids, pd.DataFrame(rows))


def test_every_heatmap_uses_the_first_metrics_clustering():
    c = comparison()
    matrices = heatmap_matrices(c)
    assert list(matrices) == ["jaccard", "weighted_overlap"]  # all-NaN influence: no heatmap
    own = {name: cluster_order(m) for name, m in matrices.items()}
    assert own["jaccard"] != own["weighted_overlap"]  # the case the shared order is for
    assert shared_order(matrices) == own["jaccard"]
    page = comparison_html(c)
    assert len(re.findall(r"<img alt='", page)) == 2
    assert "one row order: the average-linkage clustering of jaccard" in page


def test_the_roi_quotient_graph_is_labelled_with_token_text():
    from circuit_atlas.analysis.roi.report import readable_labels
    from circuit_atlas.graph import CircuitGraph, GraphMetadata

    nodes = pd.DataFrame(
        [
            {"kind": "roi", "feature": 0, "label": "ROI 0 (3 members)"},
            {"kind": "embedding", "pos": 1},
            {"kind": "logit", "pos": 1, "feature": 1234, "token": " Paris"},
            {"kind": "logit", "pos": 1, "feature": 99},
        ]
    )
    edges = pd.DataFrame({"source": [1, 0], "target": [0, 2], "weight": [1.0, 2.0]})
    graph = CircuitGraph(nodes, edges, GraphMetadata(graph_id="q", tokens=["<bos>", " capital"]))
    assert readable_labels(graph) == ["ROI 0", "' capital'@1", "→ ' Paris'", "logit t99 @1"]
