"""Importers of real files: Neuronpedia / circuit-tracer JSON (both generations) and EAP-IG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from circuit_atlas.errors import ImportFormatError
from circuit_atlas.graph import NodeKey
from circuit_atlas.ingest import load_graph
from circuit_atlas.ingest.neuronpedia import cantor_pair, cantor_unpair

from helpers.data import SHARED_GRAPHS, bundled, needs_shared
from helpers.documents import malformed_documents, small_document


def test_dollar_keeps_both_nodes_named_0_2_1_and_every_link():
    graph = load_graph(bundled("dollar.json.gz"))
    assert (graph.n_nodes, graph.n_edges) == (829, 40_249)
    feature = graph.index_of(NodeKey("feature", layer=0, pos=1, feature=2))
    error = graph.index_of(NodeKey("error", layer=2, pos=1))
    assert graph.nodes.loc[[feature, error], "source_id"].tolist() == ["0_2_1", "0_2_1"]
    edges = graph.edges
    # Error nodes never receive edges; every link into "0_2_1" went to the feature.
    assert (edges["target"] == error).sum() == 0
    assert (edges["target"] == feature).sum() == 2
    # Both nodes send: the pair "0_2_1"->"5_3992_1" appears twice in the file, once from each.
    target = graph.index_of(NodeKey("feature", layer=5, pos=1, feature=3992))
    pair = edges[(edges["target"] == target) & edges["source"].isin([feature, error])]
    assert sorted(pair["source"].tolist()) == sorted([feature, error])


def test_resolved_links_respect_causality_in_dollar():
    """Sources sit on an earlier layer (or are embeddings) and never at a later position."""
    graph = load_graph(bundled("dollar.json.gz"))
    nodes = graph.nodes
    src, dst = graph.edges["source"].to_numpy(), graph.edges["target"].to_numpy()
    pos = nodes["pos"].to_numpy(dtype=float)
    assert (pos[src] <= pos[dst]).all()
    kind = nodes["kind"].to_numpy()
    layer = nodes["layer"].to_numpy(dtype=float, na_value=-1)
    inner = np.isin(kind[src], ["feature", "error"]) & np.isin(kind[dst], ["feature", "error"])
    assert (layer[src][inner] < layer[dst][inner]).all()


def test_cantor_pairing_round_trips():
    for layer, index in [(0, 0), (0, 19204), (25, 288), (24, 79427), (25, 16383)]:
        assert cantor_unpair(cantor_pair(layer, index)) == (layer, index)
    assert cantor_pair(0, 19204) == 184_425_614  # air-clt-hp.json, node 0_19204_1


@needs_shared()
@pytest.mark.parametrize(
    "path", sorted((SHARED_GRAPHS / "neuronpedia").glob("*/*.json")), ids=lambda p: p.name[:40]
)
def test_every_neuronpedia_file_imports_with_exact_counts_and_indices(path: Path):
    raw = json.loads(path.read_text())
    graph = load_graph(path)
    assert graph.n_nodes == len(raw["nodes"]) and graph.n_edges == len(raw["links"])
    features = graph.nodes[graph.nodes["kind"] == "feature"]
    # Test-only cross-check: the decoded index equals the one inside the exporter's node_id.
    from_ids = [int(s.split("_")[1]) for s in features["source_id"]]
    assert features["feature"].astype(int).tolist() == from_ids
    weights = sorted(link["weight"] for link in raw["links"])
    assert np.array_equal(np.sort(graph.edges["weight"].to_numpy()), weights)


def test_eap_ig_graph_keeps_channels_and_in_graph():
    graph = load_graph(bundled("gpt2-ioi-eap-ig.json.gz"))
    assert (graph.n_nodes, graph.n_edges) == (158, 32_491)
    assert int(graph.edges["in_graph"].sum()) == 756
    counts = graph.edges["channel"].value_counts().to_dict()
    assert counts["q"] == counts["k"] == counts["v"]
    head = graph.index_of(NodeKey("attention_head", layer=0, head=0))
    into_head = graph.edges[graph.edges["target"] == head]
    assert sorted(into_head["channel"]) == ["k", "q", "v"]
    assert graph.graph_id == "gpt2-ioi-eap-ig"


# ---------------------------------------------------------------------- malformed input
def _write(tmp_path: Path, text: str, name: str = "bad.json") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_small_document_is_valid(tmp_path: Path):
    graph = load_graph(_write(tmp_path, json.dumps(small_document())))
    assert graph.graph_id == "small" and graph.n_edges == 2


@pytest.mark.parametrize("case", sorted(malformed_documents()))
def test_malformed_file_gives_one_line_error_naming_file_and_field(tmp_path: Path, case: str):
    text, fragment = malformed_documents()[case]
    path = _write(tmp_path, text, f"{case}.json")
    with pytest.raises(ImportFormatError) as info:
        load_graph(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    assert fragment in message


def test_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ImportFormatError, match="no such file"):
        load_graph(tmp_path / "nope.json")
