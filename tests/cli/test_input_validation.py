"""Broken and hostile graph files are refused with one line naming the file and the field.

One test per finding of the input-robustness review; each case was accepted, crashed with an
``internal error`` or hung before. Every hostile file is a small real file (bundled with the
package) with one thing changed, so each test shows exactly which change is refused.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from circuit_atlas.errors import ImportFormatError, InvalidGraphError
from circuit_atlas.graph import MAX_STRING_BYTES, CircuitGraph, GraphMetadata, nodes_from_records
from circuit_atlas.ingest import load_graph
from circuit_atlas.ingest.importers import MAX_JSON_DEPTH
from circuit_atlas.ingest.neuronpedia import cantor_pair

from helpers.cli import error_lines, run_cli
from helpers.data import bundled

BEE = "bee-insect-clt.json.gz"  # Neuronpedia / circuit-tracer JSON, gemma-2-2b, 7 tokens
EAP = "gpt2-ioi-eap-ig.json.gz"  # EAP-IG component graph, GPT-2 small (12 layers, 12 heads)
FEATURE, ERROR, LOGIT = 3, 209, 256  # rows of bee: feature 0_19204_1, first error, first logit
HUGE = "x" * (20 * 2**20)  # 20 MB: over the 16 MB Bolt message the server silently drops
MARK = "@@literal@@"  # stands for a literal json.dumps cannot write (NaN, 1e400, …)


@functools.cache
def _real_text(name: str) -> str:
    with gzip.open(bundled(name), "rt", encoding="utf-8") as handle:
        return handle.read()


def real(name: str) -> dict[str, Any]:
    """A fresh parsed copy of a bundled real file, to mutate."""
    return json.loads(_real_text(name))


def write(tmp_path: Path, document: dict[str, Any] | str, literal: str | None = None) -> Path:
    """Write ``document`` as JSON; ``literal`` replaces the string ``MARK`` verbatim."""
    text = document if isinstance(document, str) else json.dumps(document)
    if literal is not None:
        text = text.replace(json.dumps(MARK), literal)
    path = tmp_path / "hostile.json"
    path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path, *fragments: str) -> str:
    """The one-line ``ImportFormatError`` of ``path``; it starts with the file and names the
    field (every fragment), and stays short whatever the file holds."""
    with pytest.raises(ImportFormatError) as info:
        load_graph(path)
    message = str(info.value)
    assert "\n" not in message and len(message) < 1000, message[:2000]
    assert message.startswith(f"{path}: "), message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ---------------------------------------------------------------------- non-finite numbers
@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
@pytest.mark.parametrize("field", ["activation", "influence"])
def test_non_finite_activation_or_influence_is_refused(tmp_path: Path, field: str, literal: str):
    document = real(BEE)
    document["nodes"][FEATURE][field] = MARK
    refused(write(tmp_path, document, literal), f"nodes[{FEATURE}].{field}", literal)


# ---------------------------------------------------------------------- probabilities
@pytest.mark.parametrize("probability", [-0.5, -1e-9, 1.5])
def test_token_probability_outside_0_1_is_refused(tmp_path: Path, probability: float):
    document = real(BEE)
    document["nodes"][LOGIT]["token_prob"] = probability
    refused(write(tmp_path, document), f"nodes[{LOGIT}].token_prob")


# ---------------------------------------------------------------------- layers and heads
@pytest.mark.parametrize(
    "component, fragments",
    [
        ("a99.h0", ["nodes['a99.h0']", "layer 99", "12 layers", "cfg.n_layers"]),
        ("a0.h12", ["nodes['a0.h12']", "head 12", "12 heads", "cfg.n_heads"]),
        ("m12", ["nodes['m12']", "layer 12", "cfg.n_layers"]),
    ],
)
def test_component_outside_the_stated_model_is_refused(
    tmp_path: Path, component: str, fragments: list[str]
):
    document = real(EAP)
    document["nodes"][component] = {"in_graph": False}
    document["edges"][f"input->{component}"] = {"score": 0.1, "in_graph": False}
    refused(write(tmp_path, document), *fragments)


def test_feature_below_no_layer_of_the_model_is_refused(tmp_path: Path):
    """Logits sit at layer n_layers + 1 (27 for gemma-2-2b): a feature at layer 99 is not in
    the model, although its cantor code is consistent."""
    document = real(BEE)
    node = document["nodes"][FEATURE]
    node.update(layer="99", feature=cantor_pair(99, 19204))
    refused(write(tmp_path, document), f"nodes[{FEATURE}].layer", "layer 99", "27")


def test_negative_layer_is_refused(tmp_path: Path):
    document = real(BEE)
    document["nodes"][ERROR]["layer"] = "-1"
    refused(write(tmp_path, document), f"nodes[{ERROR}].layer", "-1")


@pytest.mark.parametrize(
    "field, value",
    [
        ("n_layers", 10**20),  # beyond 64 bits
        ("n_layers", 100_000),  # a 64-bit integer, but no model has 100,000 layers
        ("n_heads", 1_000_000),
        ("d_model", 2**40),
    ],
)
def test_absurd_model_configuration_is_refused(tmp_path: Path, field: str, value: int):
    document = real(EAP)
    document["cfg"][field] = value
    refused(write(tmp_path, document), f"cfg.{field}")


# ---------------------------------------------------------------------- self-loops
def test_neuronpedia_self_loop_is_refused(tmp_path: Path):
    document = real(BEE)
    node_id = document["nodes"][FEATURE]["node_id"]
    document["links"].append({"source": node_id, "target": node_id, "weight": 0.5})
    index = len(document["links"]) - 1
    refused(write(tmp_path, document), f"links[{index}]", repr(node_id), "self-loop")


def test_eap_ig_self_loop_is_refused(tmp_path: Path):
    document = real(EAP)
    document["edges"]["a0.h0->a0.h0<q>"] = {"score": 0.1, "in_graph": False}
    refused(write(tmp_path, document), "edges['a0.h0->a0.h0<q>']", "self-loop")


def test_graph_self_loop_is_refused_whatever_made_the_graph():
    """``CircuitGraph.validate`` is the check every importer and attribution job passes."""
    nodes = pd.DataFrame(
        [{"kind": "embedding", "pos": 0}, {"kind": "feature", "layer": 3, "pos": 5, "feature": 42}]
    )
    edges = pd.DataFrame({"source": [0, 1], "target": [1, 1], "weight": [1.0, 0.5]})
    with pytest.raises(InvalidGraphError, match=r"edge 1 is a self-loop on node 1 \(feature L3"):
        CircuitGraph(nodes, edges, GraphMetadata(graph_id="loop"))


# ---------------------------------------------------------------------- duplicate keys
def test_duplicate_links_key_is_refused(tmp_path: Path):
    """json keeps the last copy: a second, empty ``links`` stored a graph with 0 edges."""
    text = _real_text(BEE).rstrip()
    assert text.endswith("}")
    refused(write(tmp_path, text[:-1] + ', "links": []}'), "field links", "duplicate key")


def test_duplicate_key_inside_a_node_is_refused(tmp_path: Path):
    document = real(BEE)
    document["nodes"][FEATURE]["activation"] = MARK
    literal = '1.0, "activation": 2.0'
    refused(write(tmp_path, document, literal), f"nodes[{FEATURE}].activation", "duplicate key")


# ---------------------------------------------------------------------- prompt tokens
def test_empty_prompt_tokens_are_refused(tmp_path: Path):
    document = real(BEE)
    document["metadata"]["prompt_tokens"] = []
    refused(write(tmp_path, document), "metadata.prompt_tokens")


def test_position_beyond_the_prompt_is_refused(tmp_path: Path):
    document = real(BEE)
    document["nodes"][FEATURE]["ctx_idx"] = 7  # the prompt has 7 tokens: positions 0..6
    refused(write(tmp_path, document), f"nodes[{FEATURE}].ctx_idx", "7 tokens")


# ---------------------------------------------------------------------- crashes
@pytest.mark.parametrize("digits", [22, 5_000])
def test_integer_beyond_int64_is_refused(tmp_path: Path, digits: int):
    """A 22-digit position overflowed pandas; 5,000 digits exceed Python's int() limit."""
    document = real(BEE)
    document["nodes"][FEATURE]["ctx_idx"] = MARK
    refused(
        write(tmp_path, document, "9" * digits),
        f"nodes[{FEATURE}].ctx_idx",
        f"{digits:,} digits",
        "64-bit",
    )


@pytest.mark.parametrize(
    "field, value, fragment",
    [
        ("feature", -5, "negative"),  # the cantor decoding took a square root of it
        ("create_time_ms", 2**62, "metadata.info.create_time_ms"),  # year out of range
    ],
)
def test_values_that_crashed_decoding_are_refused(
    tmp_path: Path, field: str, value: int, fragment: str
):
    document = real(BEE)
    if field == "create_time_ms":
        document["metadata"]["info"][field] = value
    else:
        document["nodes"][FEATURE][field] = value
        fragment = f"nodes[{FEATURE}].feature"
    refused(write(tmp_path, document), fragment)


@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_deep_nesting_is_refused_before_parsing(tmp_path: Path, depth: int):
    """Python's json recursed into a RecursionError; brackets inside strings do not count."""
    document = real(BEE)
    document["nodes"][FEATURE]["clerp"] = '\\"[' * 1_000
    assert load_graph(write(tmp_path, document)).n_nodes == len(document["nodes"])
    document["metadata"]["extra"] = MARK
    nested = "[" * depth + "]" * depth
    refused(write(tmp_path, document, nested), "metadata.extra", f"{MAX_JSON_DEPTH} levels")


def test_lone_surrogate_escape_is_refused(tmp_path: Path):
    """``"\\ud800"`` is valid JSON but not text: pandas crashed encoding it."""
    document = real(BEE)
    document["nodes"][FEATURE]["clerp"] = MARK
    refused(write(tmp_path, document, '"\\ud800"'), f"nodes[{FEATURE}].clerp", "surrogate")
    document["nodes"][FEATURE]["clerp"] = "bee \U0001f41d"  # json.dumps writes a pair of escapes
    graph = load_graph(write(tmp_path, document))
    assert graph.nodes.at[FEATURE, "label"] == "bee \U0001f41d"


# ---------------------------------------------------------------------- oversized strings
@pytest.mark.parametrize(
    "where, fragments",
    [
        ("clerp", [f"node {FEATURE} (feature L0 #19204 @1", "label", "20,971,520 bytes"]),
        ("node_id-type", [f"nodes[{FEATURE}].ctx_idx", "20,971,520 characters"]),
        ("prompt", ["metadata prompt", "20,971,520 bytes"]),
        ("token", ["metadata tokens[2]", "20,971,520 bytes"]),
        ("slug", ["graph id", "256 bytes"]),
    ],
)
def test_oversized_string_is_refused_before_anything_is_sent(
    tmp_path: Path, where: str, fragments: list[str]
):
    """A 20 MB label made the client wait forever for a server that had dropped the message."""
    document = real(BEE)
    if where == "clerp":
        document["nodes"][FEATURE]["clerp"] = HUGE
    elif where == "node_id-type":  # a wrong type: the message must not echo 20 MB back
        document["nodes"][FEATURE]["ctx_idx"] = HUGE
    elif where == "prompt":
        document["metadata"]["prompt"] = HUGE
    elif where == "token":
        document["metadata"]["prompt_tokens"][2] = HUGE
    else:
        document["metadata"]["slug"] = "s" * 600
    refused(write(tmp_path, document), *fragments)


def test_graph_string_and_value_limits():
    nodes = pd.DataFrame(
        [{"kind": "embedding", "pos": 0}, {"kind": "logit", "pos": 0, "feature": 9}]
    )
    edges = pd.DataFrame({"source": [0], "target": [1], "weight": [1.0]})
    meta = GraphMetadata(graph_id="limits")
    CircuitGraph(nodes.assign(label=["a" * MAX_STRING_BYTES, None]), edges, meta)
    cases = [
        (nodes.assign(label=["a" * (MAX_STRING_BYTES + 1), None]), "node 0 (embedding @0): label"),
        (nodes.assign(label=pd.Series(["\ud800", None], dtype=object)), "lone surrogate"),
        (nodes.assign(activation=[np.inf, 1.0]), "node 0 (embedding @0): activation is inf"),
        (nodes.assign(token_prob=[np.nan, 1.5]), "node 1 (logit t9 @0): token_prob is 1.5"),
        (nodes.assign(pos=[-1, 0]), "pos is -1"),
        (nodes.assign(feature=pd.Series([None, 2**70], dtype=object)), "column 'feature'"),
    ]
    for table, message in cases:
        with pytest.raises(InvalidGraphError, match=re.escape(message)):
            CircuitGraph(table, edges, meta)
    # Importers build tables from records: pandas' Arrow strings crashed on a lone surrogate.
    records = [{"kind": "embedding", "pos": 0}, {"kind": "logit", "pos": 0, "token": "\ud800"}]
    with pytest.raises(InvalidGraphError, match="node 1: token is not valid Unicode"):
        nodes_from_records(records)


# ---------------------------------------------------------------------- as a user runs it
def _cli_case(name: str, tmp_path: Path) -> Path:
    if name == "nan-activation":
        document = real(BEE)
        document["nodes"][FEATURE]["activation"] = MARK
        return write(tmp_path, document, "NaN")
    if name == "duplicate-links":
        return write(tmp_path, _real_text(BEE).rstrip()[:-1] + ', "links": []}')
    if name == "layer-99":
        document = real(EAP)
        document["nodes"]["a99.h0"] = {"in_graph": False}
        return write(tmp_path, document)
    if name == "deep-nesting":
        document = real(BEE)
        document["metadata"]["extra"] = MARK
        return write(tmp_path, document, "[" * 100_000 + "]" * 100_000)
    document = real(BEE)
    document["nodes"][FEATURE]["clerp"] = HUGE
    return write(tmp_path, document)


@pytest.mark.parametrize(
    "name", ["nan-activation", "duplicate-links", "layer-99", "deep-nesting", "huge-label"]
)
def test_cli_refuses_with_one_line_and_exit_1(tmp_path: Path, name: str):
    """Parsing fails before any server starts, so this needs no database."""
    path = _cli_case(name, tmp_path)
    result = run_cli("--data-dir", str(tmp_path / "data"), "ingest", str(path), timeout=120)
    lines = error_lines(result)
    assert result.returncode == 1, result.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), lines
    assert "internal error" not in lines[0]
