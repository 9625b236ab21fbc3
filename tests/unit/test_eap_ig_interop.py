"""EAP-IG ``.json``/``.pt`` and MIB submissions written from stored component graphs, and the
EAP-IG ``.pt`` importer: round trips, MIB's edge counts, and one clear error per bad file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.exporters.eap_ig import (
    MIB_PERCENTAGES,
    eap_ig_json,
    write_eap_ig_pt,
    write_mib_submission,
)
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest import load_graph
from circuit_atlas.ingest.attribution.circuit import select
from circuit_atlas.ingest.attribution.export import eap_ig_document, to_circuit_graph
from circuit_atlas.ingest.attribution.methods import attribute

from helpers.data import bundled
from helpers.models import random_task, tiny_model


def stored_graph(attn_only: bool) -> tuple[CircuitGraph, dict]:
    """What ``circuit-atlas attribute`` stores for the tiny model: every edge scored, the top
    10 in the circuit; and the EAP-IG document the job itself writes."""
    model = tiny_model(attn_only=attn_only)
    result = attribute(model, random_task(), "eap", progress=False)
    circuit = select(result.graph, result.scores, "topn", 10)
    document = eap_ig_document(result, circuit, model.d_model)
    return to_circuit_graph(document, result, graph_id="g", model_name="tiny"), document


def edge_table(graph: CircuitGraph) -> set[tuple[str, str, str, float, bool]]:
    keys = [k.display_id() for k in graph.keys()]
    e = graph.edges
    return {
        (keys[s], keys[t], c or "", round(float(w), 6), bool(i))
        for s, t, c, w, i in zip(e["source"], e["target"], e["channel"], e["weight"], e["in_graph"])
    }


def test_the_json_export_is_the_document_the_job_writes():
    graph, document = stored_graph(attn_only=False)
    assert eap_ig_json(graph) == {**document, "cfg": {**document["cfg"]}}


def test_neuron_scores_become_node_properties_and_travel_in_the_json(tmp_path):
    """``--neurons``: each node's score per output dimension is stored on the node
    (``neuron_scores``, ``node_score`` = their sum) and written as EAP-IG's ``neurons_scores`` /
    ``score`` node fields, which MIB's neuron-level circuits use."""
    model = tiny_model()
    result = attribute(model, random_task(), "eap", progress=False, neurons=True)
    circuit = select(result.graph, result.scores, "topn", 10)
    document = eap_ig_document(result, circuit, model.d_model)
    graph = to_circuit_graph(document, result, graph_id="n", model_name="tiny")
    nodes = graph.nodes_frame().set_index("source_id")
    assert result.neuron_scores is not None
    for f, name in enumerate(result.graph.forward_names):
        np.testing.assert_allclose(nodes.loc[name, "neuron_scores"], result.neuron_scores[f])
        assert nodes.loc[name, "node_score"] == pytest.approx(result.neuron_scores[f].sum())
    assert eap_ig_json(graph)["nodes"] == document["nodes"]
    again = load_graph(write_mib_submission(graph, tmp_path, circuits=False)[0], graph_id="m")
    np.testing.assert_array_equal(  # logits has no node score: NaN on both sides
        again.nodes_frame()["node_score"].to_numpy(), graph.nodes_frame()["node_score"].to_numpy()
    )


def test_a_pt_export_reads_back_as_the_same_graph(tmp_path):
    graph, _ = stored_graph(attn_only=False)
    path = write_eap_ig_pt(graph, tmp_path / "g.pt")
    again = load_graph(path, graph_id="g")
    assert again.metadata.source_format == "eap-ig-pt"
    assert edge_table(again) == edge_table(graph)
    plain = torch.load(path, weights_only=True)  # what EAP-IG's Graph.from_pt calls
    assert plain["edges_scores"].shape == (1 + 2 * 4, 2 * (3 * 3 + 1) + 1)
    assert not (tmp_path / "g.pt.partial").exists()


def test_an_attention_only_graph_gets_empty_mlp_slots(tmp_path):
    graph, _ = stored_graph(attn_only=True)
    again = load_graph(write_eap_ig_pt(graph, tmp_path / "a.pt"), graph_id="a")
    original = edge_table(graph)
    assert original <= edge_table(again)
    added = edge_table(again) - original
    assert added and all(w == 0 and not member for *_, w, member in added)


def test_mib_circuits_hold_the_top_edges_at_each_percentage(tmp_path):
    graph, document = stored_graph(attn_only=False)
    (importances,) = write_mib_submission(graph, tmp_path / "imp", circuits=False)
    assert json.loads(importances.read_text())["edges"] == document["edges"]
    files = write_mib_submission(graph, tmp_path / "ioi_tiny", circuits=True)
    assert [f.name for f in files] == [f"edges_{k:g}pct.json" for k in MIB_PERCENTAGES]
    scores = {name: abs(e["score"]) for name, e in document["edges"].items()}
    ranked = sorted(scores, key=lambda n: -scores[n])
    for percent, path in zip(MIB_PERCENTAGES, files):
        circuit = json.loads(path.read_text())
        chosen = {n for n, e in circuit["edges"].items() if e["in_graph"]}
        count = int(percent / 100 * len(scores))
        assert len(chosen) == count
        assert chosen == set(ranked[:count]) or min(scores[n] for n in chosen) >= max(
            scores[n] for n in set(scores) - chosen
        )
        in_nodes = {n for n, v in circuit["nodes"].items() if v["in_graph"]}
        ends = {part.split("<")[0] for n in chosen for part in n.split("->")}
        assert in_nodes == ends
        load_graph(path, graph_id=f"c{percent:g}")  # each one imports


def test_feature_graphs_are_refused_with_the_reason(tmp_path):
    with pytest.raises(CircuitAtlasError, match="EAP-IG files hold component graphs"):
        write_eap_ig_pt(load_graph(bundled("dollar.json.gz")), tmp_path / "x.pt")
    assert not list(tmp_path.iterdir())


def test_bad_eap_ig_pt_files_get_one_clear_error(tmp_path):
    graph, _ = stored_graph(attn_only=False)
    good = torch.load(write_eap_ig_pt(graph, tmp_path / "good.pt"), weights_only=True)
    cases = {
        "names": ({**good, "src_nodes": ["input", "a0.h9", *good["src_nodes"][2:]]},
                  r"src_nodes: .*position 1: 'a0.h9', expected 'a0.h0'"),
        "shape": ({**good, "edges_scores": good["edges_scores"][:, :-1]},
                  r"edges_scores: expected a tensor of shape \(9, 21\)"),
        "nan": ({**good, "edges_scores": good["edges_scores"] * float("nan")},
                "NaN or infinite scores"),
        "cfg": ({**good, "cfg": {"n_layers": 0, "n_heads": 4}}, "n_layers"),
    }  # fmt: skip
    for name, (document, message) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(document, path)
        with pytest.raises(CircuitAtlasError, match=message):
            load_graph(path)


EAP_IG_PYTHON = os.environ.get("EAP_IG_PYTHON")


@pytest.mark.skipif(
    not EAP_IG_PYTHON,
    reason="EAP-IG is not installed beside this environment: set EAP_IG_PYTHON to a Python "
    "with hannamw/EAP-IG installed",
)
def test_eap_igs_own_loaders_read_the_exports(tmp_path):
    graph, document = stored_graph(attn_only=False)
    pt = write_eap_ig_pt(graph, tmp_path / "g.pt")
    (importances,) = write_mib_submission(graph, tmp_path / "imp", circuits=False)
    script = (
        "import json, sys\n"
        "from eap.graph import Graph\n"
        "a, b = Graph.from_pt(sys.argv[1]), Graph.from_json(sys.argv[2])\n"
        "print(json.dumps([[g.count_included_edges(), float(g.scores.abs().sum())]"
        " for g in (a, b)]))\n"
    )
    result = subprocess.run(
        [str(EAP_IG_PYTHON), "-c", script, str(pt), str(importances)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    total = sum(abs(e["score"]) for e in document["edges"].values())
    members = sum(e["in_graph"] for e in document["edges"].values())
    for count, score_sum in seen:
        assert count == members
        assert score_sum == pytest.approx(total, rel=1e-5)
    assert isinstance(Path(pt), Path)
