"""The streaming Neuronpedia reader gives the whole-document path's graph, or hands over.

Every check compares with ``load_document_graph`` (the strict whole-document path): on the real
files, on synthetic files in many layouts (read with tiny chunks, so that values straddle
reads), on refusals (which must never be accepted by the stream), and on random corruptions.
"""

from __future__ import annotations

import gzip
import json
import math
import random
import re
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from circuit_atlas.errors import ImportFormatError
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest import load_graph
from circuit_atlas.ingest.importers import load_document_graph
from circuit_atlas.ingest.neuronpedia_stream import (
    _NUMBER,
    _weights,
    stream_neuronpedia,
    stream_parts,
)
from circuit_atlas.testing.synthetic import layered_neuronpedia, synthetic_neuronpedia

from helpers.data import SHARED_GRAPHS
from helpers.skips import skip_test

CHUNKS = (7, 61, 333, 4096, 1 << 20)


def assert_same_graph(streamed: CircuitGraph | None, strict: CircuitGraph) -> None:
    assert streamed is not None, "the stream handed over"
    pd.testing.assert_frame_equal(streamed.nodes, strict.nodes)
    pd.testing.assert_frame_equal(streamed.edges, strict.edges)
    bits = [g.edges["weight"].to_numpy().view(np.int64) for g in (streamed, strict)]
    assert np.array_equal(*bits)  # the same doubles, -0.0 included
    assert streamed.metadata == strict.metadata


def small_layered(seed: int = 0) -> dict[str, Any]:
    return layered_neuronpedia(120, 1500, n_layers=4, n_pos=5, n_logits=3, seed=seed)


# ------------------------------------------------------------------ real files
@pytest.mark.slow
def test_every_real_neuronpedia_file_streams_to_the_strict_graph():
    paths = sorted((SHARED_GRAPHS / "neuronpedia").glob("*/*.json"))
    if not paths:
        skip_test("../shared/data is absent")
    for i, path in enumerate(paths):
        strict = load_document_graph(path)
        if path.name == "dollar.json":  # "0_2_1" names two nodes: resolve_links decides
            assert stream_neuronpedia(path) is None
            assert_same_graph(load_graph(path), strict)
            continue
        chunk = CHUNKS[i % len(CHUNKS)]
        assert_same_graph(stream_neuronpedia(path, chunk_bytes=chunk), strict)


# ------------------------------------------------------------------ synthetic files
def _link_text(link: dict[str, Any], style: int) -> str:
    """One link in one of several valid spellings (style 0 is the canonical compact one)."""
    source, target, weight = (json.dumps(link[k]) for k in ("source", "target", "weight"))
    if style == 1:
        return f'{{ "source" : {source} ,\n\t"target":{target},"weight" :\r\n{weight} }}'
    if style == 2:
        return f'{{"target":{target},"source":{source},"weight":{weight}}}'
    if style == 4:  # more whitespace than the bulk reader takes
        return f'{{"source":{" " * 300}{source},"target":{target},"weight":{weight}}}'
    if style == 3:
        return f'{{"source":{source},"target":{target},"weight":{weight},"extra":[1,{{"a":null}}]}}'
    return f'{{"source":{source},"target":{target},"weight":{weight}}}'


def _document_text(document: dict[str, Any], rng: random.Random) -> str:
    """The file with its top-level keys shuffled (``links`` somewhere after ``metadata`` and
    ``nodes``, which the stream needs first) and links of every spelling among canonical runs."""
    keys = [k for k in document if k != "links"]
    rng.shuffle(keys)
    last = max(keys.index("metadata"), keys.index("nodes"))
    keys.insert(rng.randrange(last + 1, len(keys) + 1), "links")
    styles = [rng.choice((0, 0, 0, 1, 2, 3, 4)) for _ in document["links"]]
    links = ",\n".join(_link_text(link, s) for link, s in zip(document["links"], styles))
    parts = [
        f'"links": [{links}]' if k == "links" else f"{json.dumps(k)}: {json.dumps(document[k])}"
        for k in keys
    ]
    return "{\n" + ",\n".join(parts) + "\n}\n"


def _with_odd_ids(document: dict[str, Any]) -> dict[str, Any]:
    """Node ids that need escapes, are not ASCII, or are longer than the bulk lookup takes."""
    renames = {
        document["nodes"][0]["node_id"]: 'quote"and\\slash',
        document["nodes"][1]["node_id"]: "ünïcödé",
        document["nodes"][2]["node_id"]: "x" * 300,
        document["nodes"][3]["node_id"]: "",
        document["nodes"][4]["node_id"]: "tab\tid",
    }
    for node in document["nodes"]:
        node["node_id"] = renames.get(node["node_id"], node["node_id"])
    for link in document["links"]:
        link["source"] = renames.get(link["source"], link["source"])
        link["target"] = renames.get(link["target"], link["target"])
    return document


def _write(path: Path, text: str | bytes) -> Path:
    data = text.encode("utf-8") if isinstance(text, str) else text
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def _variants(tmp_path: Path) -> list[Path]:
    rng = random.Random(5)
    layered = small_layered()
    layered["metadata"]["info"]["generator"] = {"name": "tool", "version": "9", "url": "u"}
    uniform = synthetic_neuronpedia(90, 800, n_layers=5, n_pos=4, seed=3)
    uniform["qParams"] = {"pinnedIds": ["a", "b"], "linkType": "both"}
    shuffled = {**small_layered(seed=5), "qParams": {"supernodes": [["x", "y"]]}, "zzz": [None]}
    ints = small_layered(seed=1)
    for i, link in enumerate(ints["links"]):
        link["weight"] = (i % 7) - 3 if i % 3 == 0 else link["weight"]
    specials = [
        123456789012345678,  # 18 digits: read in bulk
        1234567890123456789,  # 19 digits: the strict reader decides
        -9223372036854775808,
        -0.0,
        5e-324,
        1.7976931348623157e308,
        777777777,  # written as "-0" below: an integer zero
    ]
    for link, value in zip(ints["links"][4:], specials):
        link["weight"] = value
    odd = _with_odd_ids(small_layered(seed=2))
    paths = [
        _write(tmp_path / "compact.json", json.dumps(layered, separators=(",", ":"))),
        _write(tmp_path / "spaced.json", json.dumps(uniform)),
        _write(tmp_path / "indented.json.gz", json.dumps(layered, indent=2)),
        _write(tmp_path / "tabs.json", json.dumps(uniform, indent="\t")),
        _write(tmp_path / "shuffled.json", _document_text(shuffled, rng)),
        _write(tmp_path / "ints.json", json.dumps(ints).replace("777777777", "-0")),
        _write(tmp_path / "odd.json", json.dumps(odd, ensure_ascii=False)),
        _write(tmp_path / "odd-ascii.json.gz", json.dumps(odd)),
    ]
    # Escaped spellings of plain ids and of a key: the strict parser reads those links.
    text = json.dumps(layered)
    first = layered["links"][3]["source"]
    escaped = "".join(f"\\u{ord(c):04x}" if c == "_" else c for c in first)
    head, links = text.split('"links"')
    links = links.replace(f'"source": "{first}"', f'"source": "{escaped}"')
    links = links.replace('"target": ', '"targ\\u0065t": ', 1)
    paths.append(_write(tmp_path / "escaped.json", head + '"links"' + links))
    return paths


def test_synthetic_files_in_every_layout_stream_to_the_strict_graph(tmp_path: Path):
    for path in _variants(tmp_path):
        strict = load_document_graph(path)
        for chunk in CHUNKS:
            assert_same_graph(stream_neuronpedia(path, chunk_bytes=chunk), strict)
        assert_same_graph(load_graph(path), strict)


def test_colliding_id_hashes_only_slow_the_stream_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Ids are found by hash and then compared in full: with every id of one length hashing
    alike, links still go to the right nodes (those the table cannot tell apart go through the
    strict parser)."""
    import circuit_atlas.ingest.neuronpedia_stream as stream

    monkeypatch.setattr(stream, "_hash", lambda words, sizes: sizes.astype(np.uint64))
    path = _write(tmp_path / "g.json", json.dumps(small_layered()))
    assert_same_graph(stream_neuronpedia(path), load_document_graph(path))


def test_canonical_links_are_read_in_bulk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Only the last link of a canonical file (followed by ``]``, not a comma) goes through the
    strict parser, whatever the chunk size: the bulk path is what reads the file."""
    import circuit_atlas.ingest.neuronpedia_stream as stream

    batches: list[int] = []
    strict_links = stream._Reader.strict_links

    def counted(self: Any, rows: Any, edges: Any, count: int) -> bool:
        batches.append(count)
        return strict_links(self, rows, edges, count)

    monkeypatch.setattr(stream._Reader, "strict_links", counted)
    document = small_layered()
    for name, text in (
        ("compact.json", json.dumps(document, separators=(",", ":"))),
        ("indented.json", json.dumps(document, indent=2)),
    ):
        path = _write(tmp_path / name, text)
        for chunk in (333, 4096, 1 << 20):
            batches.clear()
            assert_same_graph(
                stream_neuronpedia(path, chunk_bytes=chunk), load_document_graph(path)
            )
            assert batches == [1], (name, chunk, batches)


def test_named_format_and_graph_id_are_honoured(tmp_path: Path):
    path = _write(tmp_path / "g.json", json.dumps(small_layered()))
    strict = load_document_graph(path, "neuronpedia", "other-id")
    assert_same_graph(stream_neuronpedia(path, "other-id", detect=False), strict)
    assert_same_graph(load_graph(path, "neuronpedia", "other-id"), strict)
    assert load_graph(path, "neuronpedia", "other-id").graph_id == "other-id"


def test_unusual_but_valid_files_are_handed_to_the_whole_document_path(tmp_path: Path):
    document = small_layered()
    late = {"links": document["links"], "metadata": document["metadata"], "nodes": []}
    late["nodes"] = document["nodes"]
    cases = {
        "links-first.json": json.dumps(late),
        # another format's keys: eap_ig's sniff comes first in the registry
        "both-formats.json": json.dumps({**document, "cfg": {}, "edges": {}}),
    }
    for name, text in cases.items():
        path = _write(tmp_path / name, text)
        assert stream_neuronpedia(path) is None, name
        try:
            expected: Any = load_document_graph(path)
        except ImportFormatError as exc:
            with pytest.raises(ImportFormatError) as info:
                load_graph(path)
            assert str(info.value) == str(exc)
        else:
            assert_same_graph(load_graph(path), expected)


def test_an_empty_links_array_streams(tmp_path: Path):
    document = small_layered()
    document["links"] = []
    path = _write(tmp_path / "empty.json", json.dumps(document))
    strict = load_document_graph(path)
    for chunk in CHUNKS:
        assert_same_graph(stream_neuronpedia(path, chunk_bytes=chunk), strict)


# ------------------------------------------------------------------ refusals
def _refusal_cases() -> dict[str, tuple[bytes, str]]:
    """name → (file bytes, fragment of the strict path's one-line error)."""
    document = small_layered()
    text = json.dumps(document)
    link = document["links"][5]
    canonical = json.dumps(link)
    source, target = json.dumps(link["source"]), json.dumps(link["target"])

    def at_link(replacement: str) -> bytes:
        assert text.count(canonical) == 1
        return text.replace(canonical, replacement).encode()

    def weight(literal: str) -> bytes:
        return at_link(f'{{"source": {source}, "target": {target}, "weight": {literal}}}')

    cut = text.index(canonical) + 20
    return {
        "nan": (weight("NaN"), "links[5].weight: NaN is not a number"),
        "infinity": (weight("-Infinity"), "links[5].weight: -Infinity is not a number"),
        "overflow": (weight("1e400"), "links[5].weight: 1e400 is beyond the range"),
        "big-int": (weight("123456789012345678901"), "links[5].weight: integer of 21 digits"),
        "int-past-64-bits": (weight("9223372036854775808"), "links[5].weight: integer of 19"),
        "leading-zero": (weight("01.5"), "invalid JSON"),
        "plus": (weight("+1.5"), "invalid JSON"),
        "bare-dot": (weight("1."), "invalid JSON"),
        "string-weight": (weight('"1.5"'), "links[5].weight"),
        "duplicate-key": (
            at_link(f'{{"source": {source}, "source": {source}, "target": {target}, "weight": 1}}'),
            "links[5].source: duplicate key",
        ),
        "missing-weight": (
            at_link(f'{{"source": {source}, "target": {target}}}'),
            "links[5].weight: Field required",
        ),
        "unknown-node": (
            at_link(f'{{"source": "nope", "target": {target}, "weight": 1.0}}'),
            "links[5].source: 'nope' is not the id of any node",
        ),
        "self-loop": (
            at_link(f'{{"source": {target}, "target": {target}, "weight": 1.0}}'),
            "links[5]: source and target are the same node",
        ),
        "lone-surrogate": (
            at_link(f'{{"source": "\\ud800", "target": {target}, "weight": 1.0}}'),
            "links[5].source: a \\u escape makes half of a surrogate pair",
        ),
        "invalid-utf8": (
            at_link(f'{{"source": "\xff", "target": {target}, "weight": 1.0}}').replace(
                "\xff".encode(), b"\xff"
            ),
            "not UTF-8 text",
        ),
        "control-character": (
            at_link(f'{{"source": "a\tb", "target": {target}, "weight": 1.0}}'),
            "invalid JSON: Invalid control character",
        ),
        "truncated": (text[:cut].encode(), "truncated JSON"),
        "trailing-garbage": ((text + " x").encode(), "Extra data"),
        "trailing-comma": (text.removesuffix("]}").encode() + b",]}", "invalid JSON"),
        "second-document": ((text + text).encode(), "invalid JSON: Extra data"),
        "duplicate-top-level-key": (
            (text[:-1] + ', "links": []}').encode(),
            "field links: duplicate key",
        ),
        "bom": (b"\xef\xbb\xbf" + text.encode(), "Unexpected UTF-8 BOM"),
        "not-an-object": (b"[]", "not a recognised graph format"),
        "empty": (b"", "truncated JSON"),
    }


@pytest.mark.parametrize("case", sorted(_refusal_cases()))
def test_refusals_are_never_streamed_and_read_as_the_strict_path_words_them(
    tmp_path: Path, case: str
):
    data, fragment = _refusal_cases()[case]
    path = _write(tmp_path / f"{case}.json", data)
    for chunk in (7, 333, 1 << 20):
        assert stream_neuronpedia(path, chunk_bytes=chunk) is None
    with pytest.raises(ImportFormatError) as strict:
        load_document_graph(path)
    with pytest.raises(ImportFormatError) as streamed:
        load_graph(path)
    assert str(streamed.value) == str(strict.value)
    assert fragment in str(strict.value)
    assert str(strict.value).startswith(str(path)) and "\n" not in str(strict.value)


def test_a_damaged_gzip_file_is_refused_as_before(tmp_path: Path):
    data = gzip.compress(json.dumps(small_layered()).encode())
    path = tmp_path / "cut.json.gz"
    path.write_bytes(data[: len(data) // 2])
    assert stream_neuronpedia(path) is None
    with pytest.raises(ImportFormatError, match="damaged gzip file"):
        load_graph(path)


def test_random_corruptions_are_never_accepted_unless_the_strict_path_accepts_them(
    tmp_path: Path,
):
    """Single-byte edits anywhere in the links: whatever the stream accepts, the whole-document
    path accepts too and reads as the same graph."""
    rng = random.Random(11)
    document = layered_neuronpedia(60, 300, n_layers=3, n_pos=4, n_logits=2, seed=4)
    texts = [json.dumps(document).encode(), json.dumps(document, separators=(",", ":")).encode()]
    alphabet = b'"\\{}[],: \n0123456789-+.eEx\x00\xff\x7f'
    accepted = 0
    for trial in range(240):
        text = bytearray(texts[trial % 2])
        start = text.index(b'"links"')
        at = rng.randrange(start, len(text))
        edit = rng.randrange(3)
        if edit == 0:
            text[at] = rng.choice(alphabet)
        elif edit == 1:
            del text[at]
        else:
            text.insert(at, rng.choice(alphabet))
        path = _write(tmp_path / f"m{trial}.json", bytes(text))
        streamed = stream_neuronpedia(path, chunk_bytes=rng.choice(CHUNKS))
        if streamed is not None:
            accepted += 1
            assert_same_graph(streamed, load_document_graph(path))
    assert accepted > 20  # harmless edits (whitespace, digits) were streamed, not handed over


# ------------------------------------------------------------------ weights
def test_weights_read_exactly_as_the_strict_reader_reads_them():
    """Random literals over the number characters: those leading the first that needs the strict
    parser (not JSON's grammar, non-finite, an integer that may pass 64 bits) read as
    ``float`` reads them (an integer ``-0`` as +0.0, as ``int`` then ``float`` gives)."""
    rng = random.Random(3)
    pieces = ["0", "1", "9", "-", "+", ".", "e", "E", "00", "5", "308", "400", "17"]
    for _ in range(3000):
        literals = [
            "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 6))) for _ in range(6)
        ]
        literals = [x for x in literals if _is_float(x)] or ["1"]
        weights, good = _weights(" ".join(literals).encode())
        assert good == _expected_good(literals), literals
        for literal, value in zip(literals[:good], weights[:good].tolist()):
            exact = float(int(literal)) if _is_int(literal) else float(literal)
            assert math.copysign(1, value) == math.copysign(1, exact) and value == exact


def _is_float(literal: str) -> bool:
    try:
        float(literal)
    except ValueError:
        return False
    return True


def _is_int(literal: str) -> bool:
    return re.fullmatch(r"-?[0-9]+", literal) is not None


def _expected_good(literals: list[str]) -> int:
    for i, literal in enumerate(literals):
        if not _NUMBER.fullmatch(literal.encode()) or not math.isfinite(float(literal)):
            return i
        if _is_int(literal) and abs(float(literal)) >= 1e18:
            return i
    return len(literals)


# ------------------------------------------------------------------ memory
def test_streaming_peak_memory_is_at_most_three_times_the_graph_arrays(tmp_path: Path):
    """Reading a 200k-link file stays within 3x the arrays it produces (node table, edge rows
    and weights). That bounds the reader; ``CircuitGraph`` then normalises and validates the
    edge table (``graph.py``: a copy of it and the duplicate-edge check's hash tables), which
    adds about 2x more on its own; the whole ``load_graph`` is held to 4.5x here."""
    path = tmp_path / "big.json"
    path.write_text(json.dumps(layered_neuronpedia(4000, 200_000)))
    tracemalloc.start()
    try:
        parts = stream_parts(path)
        read_peak = tracemalloc.get_traced_memory()[1]
        assert parts is not None
        del parts
        tracemalloc.reset_peak()
        graph = load_graph(path)
        load_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    edges = graph.edges
    arrays = sum(edges[c].to_numpy().nbytes for c in ("source", "target", "weight"))
    arrays += int(graph.nodes.memory_usage(deep=True).sum())
    assert graph.n_edges == 200_000
    assert read_peak <= 3 * arrays, (read_peak / arrays, arrays)
    assert load_peak <= 4.5 * arrays, (load_peak / arrays, arrays)
