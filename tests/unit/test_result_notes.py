"""Numbers that look inconsistent come with the reason: each note names it (issue 13)."""

from __future__ import annotations

import re

from circuit_atlas.analysis.roi.algorithms import RoiParams
from circuit_atlas.analysis.roi.detect import bic_boundary_note
from circuit_atlas.analysis.scores.pruned_graph import pruned_graph
from circuit_atlas.analysis.scores.table import score_graph
from circuit_atlas.cli.compare import consensus_notes
from circuit_atlas.ingest import load_graph

from helpers.data import bundled
from helpers.graphs import build, feat, nine_node_graph, tok


def test_score_says_why_its_pruned_row_has_more_nodes_than_prune_stores():
    """`score` reported 314 nodes where `prune` kept 286 at the same thresholds."""
    graph = load_graph(bundled("dollar.json.gz"))
    report, pruning = score_graph(graph, node_threshold=0.8, edge_threshold=0.98)
    stored = pruned_graph(graph, pruning)
    pruned_row = report.rows[1]
    assert (pruned_row.n_nodes, stored.n_nodes) == (314, 286)
    (note,) = [n for n in report.notes if n.startswith("the pruned row")]
    numbers = re.findall(r"the (\d+) ", note)
    assert f"scores {pruned_row.n_nodes} nodes" in note and f"stores the {stored.n_nodes}" in note
    assert numbers and int(numbers[0]) == int((stored.nodes["kind"] == "feature").sum())
    kept_errors = int((stored.nodes["kind"] == "error").sum())
    assert f"({kept_errors} of the {int((graph.nodes['kind'] == 'error').sum())}" in note


def test_no_note_when_prune_and_score_count_the_same_nodes():
    graph = nine_node_graph()
    report, pruning = score_graph(graph, node_threshold=1.0, edge_threshold=1.0)
    assert int(pruning.node_mask.sum()) == report.rows[1].n_nodes
    assert not [n for n in report.notes if n.startswith("the pruned row")]


def test_bic_at_the_upper_bound_of_k_is_flagged():
    params = RoiParams(max_k=4)
    note = bic_boundary_note(4, params, n=50)
    assert note is not None and "--max-k 4" in note and "larger" in note
    assert bic_boundary_note(3, params, n=50) is None  # BIC turned down inside the range
    assert bic_boundary_note(4, RoiParams(k=4, max_k=4), n=50) is None  # K was fixed
    assert bic_boundary_note(4, params, n=4) is None  # no larger K exists


def test_a_consensus_without_a_logit_node_says_so():
    assert consensus_notes(nine_node_graph(), "start", 0.5) == []
    without = build("no-logit", {"T0": tok(0), "F": feat(0, 0, 1)}, [("T0", "F", 1.0)])
    (note,) = consensus_notes(without, "start", 0.5)
    assert note.startswith("no logit node is in >= 50% of the graphs")
