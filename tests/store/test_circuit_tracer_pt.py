"""circuit-tracer's own ``.pt`` graph files: the unpruned graph, checked against circuit-tracer.

``tests/data/circuit_tracer/tiny.pt`` was written by circuit-tracer 0.5.0's ``Graph.to_pt``
(``make_fixture.py`` beside it), and ``tiny.expected.json`` holds what circuit-tracer itself
computed on that graph: ``compute_graph_scores`` and ``prune_graph``. Matching those numbers
checks the importer's node order and Circuit Atlas's scores against the peer tool at once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from circuit_atlas.analysis.scores.attribution_matrix import AttributionMatrix
from circuit_atlas.analysis.scores.pruning import prune
from circuit_atlas.analysis.scores.replacement import graph_scores
from circuit_atlas.analysis.scores.stored import score_stored_graph
from circuit_atlas.errors import ImportFormatError
from circuit_atlas.graph import NodeKey
from circuit_atlas.ingest import load_graph
from circuit_atlas.ingest.circuit_tracer_pt import parse_circuit_tracer_pt, read_pt
from circuit_atlas.store import CircuitStore

from helpers.cli import error_lines, run_cli

pytestmark = pytest.mark.backends("arcadedb", "neo4j")

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "circuit_tracer" / "tiny.pt"
EXPECTED = json.loads(FIXTURE.with_name("tiny.expected.json").read_text())
FLOAT32 = 1e-6  # circuit-tracer computed in float32; Circuit Atlas computes in float64


def test_scores_and_pruning_equal_circuit_tracers_own():
    matrix = AttributionMatrix.from_graph(load_graph(FIXTURE))
    scores = graph_scores(matrix)
    assert scores.replacement == pytest.approx(EXPECTED["replacement"], abs=FLOAT32)
    assert scores.completeness == pytest.approx(EXPECTED["completeness"], abs=FLOAT32)
    pruning = prune(matrix, 0.8, 0.98)
    assert pruning.node_mask.tolist() == EXPECTED["pruned_node_mask"]
    assert int(pruning.edge_mask.sum()) == EXPECTED["pruned_n_edges"]
    np.testing.assert_allclose(pruning.cumulative_share, EXPECTED["cumulative_scores"], atol=1e-6)


def test_nodes_follow_circuit_tracers_layout():
    document = read_pt(FIXTURE)
    graph = load_graph(FIXTURE)
    active, selected = document["active_features"], document["selected_features"]
    n_feat, n_pos, n_layers = len(selected), len(document["input_tokens"]), 3
    for row in range(n_feat):
        layer, pos, index = active[selected[row]].tolist()
        assert graph.keys()[row] == NodeKey("feature", layer=layer, pos=pos, feature=index)
    errors = graph.keys()[n_feat : n_feat + n_layers * n_pos]
    layout = [(layer, pos) for layer in range(n_layers) for pos in range(n_pos)]
    assert errors == [NodeKey("error", layer=layer, pos=pos) for layer, pos in layout]
    logits = graph.nodes.tail(3)
    assert logits["feature"].tolist() == [40, 41, 42]
    assert logits["pos"].tolist() == [n_pos - 1] * 3
    assert logits["is_target_logit"].tolist() == [True, False, False]
    assert graph.metadata.source_format == "circuit-tracer-pt"
    assert (graph.metadata.model, graph.metadata.transcoder_set) == ("tiny-ct", "tiny-transcoders")
    # every nonzero entry of A[target, source] is one edge, with its exact weight
    adjacency = document["adjacency_matrix"].double().numpy()
    assert graph.n_edges == np.count_nonzero(adjacency)
    np.testing.assert_array_equal(graph.adjacency().toarray(), adjacency)


def test_stored_scores_come_from_the_exact_unpruned_artifact(fresh_store: CircuitStore):
    graph = load_graph(FIXTURE)
    fresh_store.write_graph(graph)
    stored = score_stored_graph(fresh_store, graph.graph_id)
    assert stored.source == "artifact"
    full = stored.report.row("full")
    assert full.replacement == pytest.approx(EXPECTED["replacement"], abs=FLOAT32)
    assert not stored.report.pruned_by_exporter
    assert fresh_store.write_graph(load_graph(FIXTURE)).status == "unchanged"


def test_a_foreign_object_in_the_pickle_is_refused_not_run(tmp_path: Path):
    path = tmp_path / "evil.pt"
    torch.save({"adjacency_matrix": torch.zeros(2, 2), "payload": os.getcwd}, path)
    with pytest.raises(ImportFormatError, match=r"posix\.getcwd object.*refusing to unpickle"):
        load_graph(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(adjacency_matrix=d["adjacency_matrix"][:-1]), "does not fit"),
        (lambda d: d["adjacency_matrix"].__setitem__((0, 20), float("nan")), "NaN or infinite"),
        (lambda d: d.update(selected_features=d["selected_features"] + 50), "outside active"),
        (lambda d: d.update(logit_targets=d["logit_targets"][:1]), "expected 3 entries"),
    ],
)
def test_bad_contents_are_named(change, message):
    document = read_pt(FIXTURE)
    change(document)
    with pytest.raises(ImportFormatError, match=message):
        load_graph_from(document)


def load_graph_from(document: dict) -> None:
    from circuit_atlas.errors import InvalidGraphError

    try:
        parse_circuit_tracer_pt(document, FIXTURE)
    except InvalidGraphError as exc:
        raise ImportFormatError(FIXTURE, str(exc)) from None


def test_truncated_file_is_one_line(tmp_path: Path):
    path = tmp_path / "cut.pt"
    path.write_bytes(FIXTURE.read_bytes()[:500])
    with pytest.raises(ImportFormatError, match="not a readable torch file"):
        load_graph(path)


def test_cli_ingests_pt_files_and_folders(bolt_env, tmp_path: Path):
    folder = tmp_path / "graphs"
    folder.mkdir()
    (folder / "tiny.pt").write_bytes(FIXTURE.read_bytes())
    (folder / "broken.pt").write_bytes(b"not a torch file")
    bad = run_cli("ingest", str(folder), env=bolt_env)
    assert bad.returncode != 0
    assert any("broken.pt" in line for line in error_lines(bad))
    (folder / "broken.pt").unlink()
    run_cli("ingest", str(folder), env=bolt_env, check=True)
    shown = run_cli("score", "tiny", "--format", "json", env=bolt_env, check=True)
    rows = {row["scope"]: row for row in json.loads(shown.stdout)["rows"]}
    assert rows["full"]["replacement"] == pytest.approx(EXPECTED["replacement"], abs=FLOAT32)
