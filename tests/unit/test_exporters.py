"""circuit-tracer ``.pt`` export: read back by our importer and by circuit-tracer's own
``Graph.from_pt``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.exporters.circuit_tracer_pt import write_circuit_tracer_pt
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest import load_graph

from helpers.data import bundled

CT_CASE = Path(__file__).resolve().parents[1] / "data" / "circuit_tracer"


def dense(graph: CircuitGraph) -> np.ndarray:
    out = np.zeros((graph.n_nodes, graph.n_nodes))
    e = graph.edges
    out[e["target"].to_numpy(), e["source"].to_numpy()] = e["weight"].to_numpy()
    return out


def test_a_circuit_tracer_graph_round_trips_exactly(tmp_path):
    original = load_graph(CT_CASE / "features_graph.pt", graph_id="ct")
    out = write_circuit_tracer_pt(original, tmp_path / "again.pt")
    again = load_graph(out, graph_id="ct")
    assert again.nodes_frame()["node_key"].tolist() == original.nodes_frame()["node_key"].tolist()
    assert np.array_equal(dense(again), dense(original))
    kept = ["kind", "layer", "pos", "feature", "activation", "token_prob"]
    a, b = again.nodes_frame()[kept], original.nodes_frame()[kept]
    assert a.astype(str).equals(b.astype(str))
    assert again.metadata.extra["input_token_ids"] == original.metadata.extra["input_token_ids"]
    assert not (tmp_path / "again.pt.partial").exists()


def test_graphs_without_the_layout_are_refused_with_the_reason(tmp_path):
    component = load_graph(bundled("gpt2-ioi-eap-ig.json.gz"))
    with pytest.raises(InvalidGraphError, match="only attribution graphs"):
        write_circuit_tracer_pt(component, tmp_path / "x.pt")
    neuronpedia = load_graph(bundled("dollar.json.gz"))
    with pytest.raises(InvalidGraphError, match="token ids are not recorded"):
        write_circuit_tracer_pt(neuronpedia, tmp_path / "y.pt")
    assert not list(tmp_path.iterdir())


CT_PYTHON = os.environ.get("CIRCUIT_TRACER_PYTHON")


@pytest.mark.skipif(
    not CT_PYTHON,
    reason="circuit-tracer is not installed beside this environment: set CIRCUIT_TRACER_PYTHON "
    "to a Python with circuit-tracer 0.5.0 (it pins transformers <= 4.57; see "
    "tests/data/circuit_tracer/make_feature_fixture.py)",
)
def test_circuit_tracers_own_from_pt_reads_the_export(tmp_path):
    original = load_graph(CT_CASE / "features_graph.pt", graph_id="ct")
    out = write_circuit_tracer_pt(original, tmp_path / "export.pt")
    script = (
        "import json, sys\n"
        "from circuit_tracer.graph import Graph\n"
        "g = Graph.from_pt(sys.argv[1])\n"
        "a = g.adjacency_matrix\n"
        "print(json.dumps({'n': a.shape[0], 'sum': float(a.abs().sum()),"
        " 'tokens': g.input_tokens.tolist(), 'layers': g.cfg.n_layers,"
        " 'logits': [t.vocab_idx for t in g.logit_targets]}))\n"
    )
    result = subprocess.run(
        [str(CT_PYTHON), "-c", script, str(out)], capture_output=True, text=True, check=True
    )
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["n"] == original.n_nodes
    assert seen["sum"] == pytest.approx(float(np.abs(dense(original)).sum()), rel=1e-6)
    assert seen["tokens"] == original.metadata.extra["input_token_ids"]
    assert seen["layers"] == 2
    nodes = original.nodes_frame()
    assert seen["logits"] == nodes.loc[nodes["kind"] == "logit", "feature"].astype(int).tolist()
    assert sys.executable != CT_PYTHON
