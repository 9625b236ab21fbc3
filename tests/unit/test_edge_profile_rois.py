"""Neuronpedia-style grouping: edge-profile affinity (cosine of signed in/out edges) and
agglomerative ROIs, on a hand-computed graph."""

from __future__ import annotations

import numpy as np
import pytest

from circuit_atlas.analysis.roi.affinity import edge_profile_affinity
from circuit_atlas.analysis.roi.algorithms import RoiParams
from circuit_atlas.analysis.roi.detect import detect
from circuit_atlas.errors import CircuitAtlasError

from helpers.graphs import build, feat, logit, tok


def profile_graph():
    """A and B read from T0 and write to L in proportion (cosine 1); C reads like A but writes
    with the opposite sign: cos(A, C) = (1·1 + 1·(−1)) / (√2·√2) = 0; cos(B, C) = 0 too.
    D reads from T1 only and writes to L: cos(A, D) = 1·1 / (√2·√2) = 1/2."""
    return build(
        "profiles",
        {
            "T0": tok(0),
            "T1": tok(1),
            "A": feat(0, 1, 1),
            "B": feat(0, 1, 2),
            "C": feat(0, 1, 3),
            "D": feat(0, 1, 4),
            "L": logit(1, 7, 0.5),
        },
        [
            ("T0", "A", 1),
            ("T0", "B", 2),
            ("A", "L", 1),
            ("B", "L", 2),
            ("T0", "C", 1),
            ("C", "L", -1),
            ("T1", "D", 1),
            ("D", "L", 1),
        ],  # fmt: skip
    )


def test_edge_profile_affinity_is_the_positive_cosine_of_signed_profiles():
    graph = profile_graph()
    affinity = edge_profile_affinity(graph)
    dense = affinity.matrix.toarray()
    at = {key: i for i, key in enumerate(affinity.ids)}
    a, b, c, d = (at[graph.keys()[graph.nodes.index[graph.nodes["source_id"] == name][0]].encode()]
                  for name in "ABCD")  # fmt: skip
    assert dense[a, b] == pytest.approx(1.0) and dense[a, c] == 0.0 and dense[b, c] == 0.0
    assert dense[a, d] == pytest.approx(0.5) and dense[b, d] == pytest.approx(0.5)
    assert np.allclose(dense, dense.T) and (np.diag(dense) == 0).all()
    assert affinity.kind == "edge-profile" and len(affinity.ids) == 4  # anchors left out


def test_agglomerative_groups_alike_nodes_at_the_threshold():
    graph = profile_graph()
    affinity = edge_profile_affinity(graph)
    strict = detect(affinity, "agglomerative", RoiParams(min_similarity=0.9))
    sizes = np.bincount(strict.labels).tolist()
    assert sizes == [2, 1, 1]  # {A, B}, {C}, {D}
    loose = detect(affinity, "agglomerative", RoiParams(min_similarity=0.4))
    assert np.bincount(loose.labels).tolist() == [3, 1]  # D joins {A, B} at average 1/2
    fixed = detect(affinity, "agglomerative", RoiParams(k=2))
    assert fixed.n_rois == 2


def test_edge_profile_needs_two_nodes():
    graph = profile_graph()
    only = [graph.keys()[2].encode()]
    with pytest.raises(CircuitAtlasError, match="at least two nodes"):
        edge_profile_affinity(graph, only, "one")
