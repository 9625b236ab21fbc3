"""Neuronpedia graph JSON export: every shared Neuronpedia file comes back field for field, and
graphs attributed here become files the importer (and Neuronpedia's schema) accept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.exporters.neuronpedia import (
    neuronpedia_document,
    pruned_for_neuronpedia,
    write_neuronpedia_json,
)
from circuit_atlas.ingest import load_graph
from circuit_atlas.ingest.neuronpedia import parse_neuronpedia

from helpers.data import SHARED_GRAPHS, bundled, needs_shared

CT_CASE = Path(__file__).resolve().parents[1] / "data" / "circuit_tracer"
NEURONPEDIA_FILES = sorted((SHARED_GRAPHS / "neuronpedia").glob("*/*.json"))


@needs_shared()
def test_every_shared_neuronpedia_file_is_written_back_field_for_field():
    """Nodes (ids, codes, labels, jsNodeId, …), links in their order, metadata and qParams
    (pinned ids, supernodes) all equal the original file's."""
    assert len(NEURONPEDIA_FILES) >= 60
    for path in NEURONPEDIA_FILES:
        original = json.loads(path.read_text())
        document = neuronpedia_document(parse_neuronpedia(original, path))
        for part in ("metadata", "qParams", "nodes", "links"):
            assert document[part] == original[part], f"{path.name}: {part} differs"


@needs_shared()
def test_import_export_import_gives_the_same_graph_and_saved_view(tmp_path):
    path = next(p for p in NEURONPEDIA_FILES if "gemma-small-big-en" in p.name)
    graph = parse_neuronpedia(json.loads(path.read_text()), path)
    assert graph.metadata.extra["neuronpedia"]["qParams"]["supernodes"]  # a saved view
    write_neuronpedia_json(graph, tmp_path / "again.json")
    again = load_graph(tmp_path / "again.json")
    assert again.content_hash() == graph.content_hash()
    assert again.metadata == graph.metadata.model_copy(
        update={"extra": {**graph.metadata.extra, "source_file": "again.json"}}
    )


def test_the_saved_view_is_not_part_of_the_graphs_identity():
    """Re-ingesting a file whose pins changed is the same graph (the view is presentation)."""
    graph = load_graph(bundled("dollar.json.gz"))
    view = {**graph.metadata.extra, "neuronpedia": {"qParams": {"pinnedIds": ["E_2_0"]}}}
    pinned = graph.metadata.model_copy(update={"extra": view})
    assert type(graph)(graph.nodes, graph.edges, pinned).content_hash() == graph.content_hash()


def test_a_graph_attributed_here_becomes_a_pruned_file_the_importer_reads(tmp_path):
    graph = load_graph(CT_CASE / "features_graph.pt", graph_id="tiny-features")
    pruned = pruned_for_neuronpedia(graph)
    assert pruned.metadata.node_threshold == 0.8 and pruned.metadata.edge_threshold == 0.98
    assert 0 < pruned.n_edges < graph.n_edges
    write_neuronpedia_json(pruned, tmp_path / "tiny.json")
    document = json.loads((tmp_path / "tiny.json").read_text())
    # circuit-tracer's ids, which repeat ("0_1_5": feature 1 of layer 0, or layer 1's error),
    # as in real files; the link order decides them on import
    features = [n for n in document["nodes"] if n["feature_type"] == "cross layer transcoder"]
    assert [n["node_id"] for n in features] == [
        f"{layer}_{index}_{pos}"
        for layer, index, pos in pruned.nodes[pruned.nodes["kind"] == "feature"][
            ["layer", "feature", "pos"]
        ].itertuples(index=False)
    ]
    errors = [n for n in document["nodes"] if n["feature_type"] == "mlp reconstruction error"]
    assert all(n["node_id"] == f"0_{n['layer']}_{n['ctx_idx']}" for n in errors)
    token_ids = graph.metadata.extra["input_token_ids"]
    embeddings = [n for n in document["nodes"] if n["feature_type"] == "embedding"]
    assert [n["node_id"] for n in embeddings] == [f"E_{t}_{i}" for i, t in enumerate(token_ids)]
    logits = [n for n in document["nodes"] if n["feature_type"] == "logit"]
    assert {n["layer"] for n in logits} == {str(2 + 1)}  # n_layers + 1, as circuit-tracer
    again = load_graph(tmp_path / "tiny.json")
    kept = ["kind", "pos", "feature", "activation", "influence"]
    a = again.nodes[kept].astype(str).reset_index(drop=True)
    b = pruned.nodes[kept].astype(str).reset_index(drop=True)
    assert a.equals(b)
    target = again.nodes["is_target_logit"].tolist()
    assert target == pruned.nodes["is_target_logit"].fillna(False).tolist()
    is_logit = pruned.nodes["kind"] == "logit"  # the format gives other nodes probability 0
    assert (
        again.nodes["token_prob"][is_logit].tolist()
        == pruned.nodes["token_prob"][is_logit].tolist()
    )
    weights = dict(zip(zip(pruned.edges["source"], pruned.edges["target"]), pruned.edges["weight"]))
    got = dict(zip(zip(again.edges["source"], again.edges["target"]), again.edges["weight"]))
    assert got == weights


def test_graphs_the_format_cannot_hold_are_refused_and_nothing_is_written(tmp_path):
    component = load_graph(bundled("gpt2-ioi-eap-ig.json.gz"))
    with pytest.raises(InvalidGraphError, match="attribution graphs .* only"):
        write_neuronpedia_json(component, tmp_path / "x.json")
    assert not list(tmp_path.iterdir())
