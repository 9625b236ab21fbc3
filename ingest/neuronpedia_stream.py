"""Neuronpedia graph JSON read in chunks, so that peak memory follows the graph, not the file.

The whole-document path (``read_json`` + ``parse_neuronpedia``) holds the file's text, a dict
per link and a pydantic model per link at once: 1.1 GiB above the interpreter for a 78 MiB file
of 1M links whose arrays take 28 MiB (``benchmarks/ingest_memory.py``). This reader never holds
the whole text:

* the file (``.json`` or ``.json.gz``) is read ``CHUNK_BYTES`` at a time and checked as UTF-8 on
  the way in;
* every top-level value but ``links`` (``metadata``, ``qParams``, ``nodes``, any other key) is
  small: its text is cut out and parsed by the strict reader (``parse_json_text``, with the depth
  limit lowered by the level around it), then validated by the same model
  (``NeuronpediaGraphFile``, given no links) and turned into the same nodes table
  (``node_table``);
* ``links`` is read element by element. Runs of elements of the canonical shape
  ``{"source": "…", "target": "…", "weight": NUMBER}`` (JSON whitespace as the run's first
  element has it, ids without escapes) are read in bulk with array operations and no Python
  object or call per link (:func:`_canonical_run`): quotes are found, the fixed text between
  them is compared, ids are found in a hash table of the nodes' raw id bytes
  (:class:`_IdTable`) and compared in full, and weights are read by ``float`` (correctly
  rounded: the strict reader's ``float(literal)``) once JSON's number grammar is checked. A
  link cut by the end of what was read waits for the next chunk. Any other link is cut out,
  parsed strictly (a batch at a time) and validated by ``NeuronpediaLink``, as the
  whole-document path does;
* node rows and weights grow as arrays, one per run; no link id outlives its run.

Correctness first: a graph comes back only from a plainly valid file with unique node ids. For
anything else the reader returns None and ``load_graph`` reads the file through the
whole-document path, which gives the same graph, or the same one-line error, as it always did:
``node_id`` repeated (``dollar.json``: its links need ``resolve_links``' order rule), ``links``
before ``metadata`` or ``nodes``, another format's sniff matching first, and every refusal (bad
UTF-8 or gzip, invalid or truncated JSON, data after the document, a duplicate key,
NaN/Infinity, ``1e400``, an integer beyond 64 bits, a lone surrogate, a missing field, an
unknown node id, a self-loop). Refusing a malformed file therefore costs what it always did; the
errors are worded in one place.
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
import zlib
from dataclasses import dataclass
from io import BufferedIOBase
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import as_strided
from pydantic import TypeAdapter

from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.graph import CircuitGraph, GraphMetadata
from circuit_atlas.ingest.importers import (
    IMPORTERS,
    MAX_JSON_DEPTH,
    detect_format,
    parse_json_text,
)
from circuit_atlas.ingest.neuronpedia import (
    FORMAT_NAME,
    NeuronpediaGraphFile,
    NeuronpediaLink,
    NeuronpediaMetadata,
    graph_metadata,
    node_table,
)

# Bytes read at a time (and the largest window a run of links is cut from).
CHUNK_BYTES = 1 << 20
# The most links parsed strictly at once (see _Reader.links).
MAX_STRICT_BATCH = 4096
# The first window after an element that needed the strict parser: small, so that a file of
# unusual links costs little per link; it doubles while links keep the canonical shape.
FIRST_WINDOW = 4096

_WS = re.compile(rb"[ \t\n\r]*")  # JSON's whitespace (not \f or \v, which \s would allow)
_OPEN = re.compile(rb"[ \t\n\r]*\{[ \t\n\r]*")
_COLON = re.compile(rb"[ \t\n\r]*:[ \t\n\r]*")
_COMMA = re.compile(rb"[ \t\n\r]*,[ \t\n\r]*")
# What follows the "weight" key up to the next link's first quote: ': NUMBER }, {'.
_WEIGHT = re.compile(
    rb"([ \t\n\r]*:[ \t\n\r]*)[-+.eE0-9]+([ \t\n\r]*\}[ \t\n\r]*,[ \t\n\r]*\{[ \t\n\r]*)"
)
_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
# One canonical link and its comma (the bulk checks decide; this only turns others away fast).
_CANONICAL = re.compile(
    rb'[ \t\n\r]*\{[ \t\n\r]*"source"[ \t\n\r]*:[ \t\n\r]*"[^"\\\x00-\x1f]*"[ \t\n\r]*,'
    rb'[ \t\n\r]*"target"[ \t\n\r]*:[ \t\n\r]*"[^"\\\x00-\x1f]*"[ \t\n\r]*,'
    rb'[ \t\n\r]*"weight"[ \t\n\r]*:[ \t\n\r]*' + _NUMBER.pattern + rb"[ \t\n\r]*\}[ \t\n\r]*,"
)
_NUMBER_CHARS = b"0123456789.eE+-"
# Node ids a file can write without escapes (no quote, backslash or control character): only
# these are looked up by their raw bytes; any other spelling goes through the strict parser.
_PLAIN_ID = re.compile(r'[^"\\\x00-\x1f]*')
_LINKS = TypeAdapter(list[NeuronpediaLink])
# Finds where a value ends (the strict parse follows): numbers are kept as text, not converted.
_EXTENT = json.JSONDecoder(parse_float=str, parse_int=str, parse_constant=str)
# Error messages of a value that may only be cut short by the end of the bytes read so far.
_CUT_MARGIN = 16
# Weights read as float that need the exact rules of the strict reader: 0 (an integer literal
# "-0" is +0.0 there) and magnitudes where an integer literal may pass 64 bits.
_BIG = 1e18


class _Handover(Exception):
    """The file needs the whole-document path (which decides and words any error)."""


# What reading and parsing may raise on a file that is not plainly valid: each one hands over.
_HANDOVER_ERRORS = (
    _Handover,
    CircuitAtlasError,  # ImportFormatError from the strict parser, InvalidGraphError
    ValueError,  # UnicodeDecodeError, JSONDecodeError, pydantic's ValidationError
    RecursionError,
    OSError,  # no such file, a directory, a damaged gzip file
    EOFError,  # a gzip file cut short
    zlib.error,
)


def stream_neuronpedia(
    path: Path, graph_id: str | None = None, *, detect: bool = True, chunk_bytes: int = CHUNK_BYTES
) -> CircuitGraph | None:
    """The graph of a Neuronpedia JSON file read in chunks, or None to use the whole document.

    ``detect``: the format was not named, so the file must also be the one ``detect_format``
    would pick from the whole document (sniffs are shown the document with ``nodes`` and
    ``links`` emptied; every registered sniff reads keys only). ``chunk_bytes`` is the read size
    (tests make it tiny, so that values straddle chunks).
    """
    parts = stream_parts(path, graph_id, detect=detect, chunk_bytes=chunk_bytes)
    if parts is None:
        return None
    try:
        return CircuitGraph(*parts)
    except _HANDOVER_ERRORS:
        return None


class StreamedGraph(NamedTuple):
    """A graph's parts as read, before ``CircuitGraph`` normalises and validates them (node
    rows are int32 here; the graph stores int64)."""

    nodes: pd.DataFrame
    edges: pd.DataFrame
    metadata: GraphMetadata


def stream_parts(
    path: Path, graph_id: str | None = None, *, detect: bool = True, chunk_bytes: int = CHUNK_BYTES
) -> StreamedGraph | None:
    """What :func:`stream_neuronpedia` builds its graph from (None: use the whole document)."""
    try:
        with _open(path) as handle:
            return _Reader(handle, path, chunk_bytes).parts(graph_id, detect)
    except _HANDOVER_ERRORS:
        return None


def _open(path: Path) -> BufferedIOBase:
    """The file's bytes, gunzipped for a ``.gz`` name (as the whole-document reader reads)."""
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


class _Chunks:
    """The file's bytes from a cursor on, a chunk at a time, checked as UTF-8 as they come."""

    def __init__(self, handle: BufferedIOBase, chunk_bytes: int) -> None:
        self.handle = handle
        self.chunk_bytes = chunk_bytes
        self.buf = b""
        self.pos = 0
        self.eof = False
        self._utf8 = codecs.getincrementaldecoder("utf-8")()

    def more(self, at_least: int = 0) -> bool:
        """Read the next chunk (``at_least`` bytes where there are); False at the end."""
        if self.eof:
            return False
        chunk = self.handle.read(max(self.chunk_bytes, at_least))
        if not chunk:
            self._utf8.decode(b"", final=True)  # a character cut by the end of the file
            self.eof = True
            return False
        self._utf8.decode(chunk)  # raises UnicodeDecodeError; the output is not kept
        self.buf = b"".join((memoryview(self.buf)[self.pos :], chunk))
        self.pos = 0
        return True

    def peek(self) -> int | None:
        """The next byte after whitespace (the cursor moves to it); None at the end."""
        while True:
            found = _WS.match(self.buf, self.pos)
            self.pos = found.end() if found else self.pos
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return None

    def expect(self, byte: bytes) -> None:
        if self.peek() != byte[0]:
            raise _Handover(f"expected {byte!r}")
        self.pos += 1

    def value(self) -> bytes:
        """The text of the JSON value at the cursor, read on until it is whole; the cursor
        moves past it. Cut out by the C scanner; the strict parse of the text comes after."""
        self.peek()
        span = FIRST_WINDOW
        while True:
            window = self.buf[self.pos : self.pos + span]
            text = window.decode("utf-8", "ignore")  # only a character cut at the end drops
            whole_buffer = self.pos + span >= len(self.buf)
            try:
                _, end = _EXTENT.raw_decode(text)
            except json.JSONDecodeError as exc:
                cut = exc.msg.startswith("Unterminated") or exc.pos >= len(text) - _CUT_MARGIN
                if not cut:
                    raise _Handover(f"invalid JSON ({exc.msg})") from None
                end = None
            if end is not None and (end < len(text) or (whole_buffer and self.eof)):
                size = end if text.isascii() else len(text[:end].encode("utf-8"))
                self.pos += size
                return window[:size]
            # The value may go on past what was decoded: a wider window, or more of the file.
            if not whole_buffer:
                span *= 2
            elif not self.more(span):
                if end is None:
                    raise _Handover("the file ends inside a value")
            else:
                span *= 2


@dataclass
class _Run:
    """Links read in bulk: their node rows and weights, and the bytes they took."""

    sources: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    consumed: int


class _Edges:
    """The links read so far as arrays, in file order (one array per run or strict stretch)."""

    def __init__(self) -> None:
        self.parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
        self._one: tuple[list[int], list[int], list[float]] = ([], [], [])

    def add_run(self, run: _Run) -> None:
        self._flush()
        for part, values in zip(self.parts, (run.sources, run.targets, run.weights)):
            part.append(values)

    def add_one(self, source: int, target: int, weight: float) -> None:
        sources, targets, weights = self._one
        sources.append(source)
        targets.append(target)
        weights.append(weight)

    def _flush(self) -> None:
        if self._one[0]:
            for part, values, dtype in zip(self.parts, self._one, _DTYPES):
                part.append(np.array(values, dtype=dtype))
                values.clear()

    def columns(self) -> dict[str, np.ndarray]:
        """The three columns; each column's parts are let go as soon as it is joined."""
        self._flush()
        out = {}
        for name, part, dtype in zip(("source", "target", "weight"), self.parts, _DTYPES):
            out[name] = np.concatenate(part) if part else np.empty(0, dtype=dtype)
            part.clear()
        return out


# Node rows as int32 (half the memory while reading; CircuitGraph casts to int64).
_DTYPES = (np.int32, np.int32, np.float64)


class _Reader:
    """One pass over one file: the top-level object, its values, and the links array."""

    def __init__(self, handle: BufferedIOBase, path: Path, chunk_bytes: int) -> None:
        self.chunks = _Chunks(handle, chunk_bytes)
        self.path = path

    def strict(self, text: bytes, depth: int) -> Any:
        """The strict reader's parse of a value ``depth`` levels inside the document."""
        return parse_json_text(text, text.decode("utf-8"), self.path, MAX_JSON_DEPTH - depth)

    def parts(self, graph_id: str | None, detect: bool) -> StreamedGraph:
        """Read the top-level object: values before ``links`` are kept as text until it comes,
        then parsed with the nodes table built; ``links`` is read as it streams by."""
        chunks = self.chunks
        chunks.expect(b"{")
        pending: dict[str, bytes] = {}
        parsed: dict[str, Any] = {}
        found: tuple[NeuronpediaMetadata, pd.DataFrame, _Edges] | None = None
        if chunks.peek() == ord("}"):
            raise _Handover("an empty object")
        while True:
            key = self.strict(chunks.value(), 1)
            if not isinstance(key, str) or key in pending or key in parsed:
                raise _Handover("a key twice, or not a key")
            chunks.expect(b":")
            if key == "links" and found is None:
                parsed = {k: self.strict(text, 1) for k, text in pending.items()}
                pending.clear()
                meta, nodes, rows = self.nodes(parsed)
                found = meta, nodes, self.links(rows)
                parsed["links"] = []
            elif found is None:
                if detect and _another_format({*pending, key}):
                    raise _Handover("another format's keys")  # before reading its big value
                pending[key] = chunks.value()
            else:
                parsed[key] = self.strict(chunks.value(), 1)
            byte = chunks.peek()
            chunks.pos += 1
            if byte == ord("}"):
                break
            if byte != ord(","):
                raise _Handover("expected , or }")
        if chunks.peek() is not None:
            raise _Handover("data after the document")
        if found is None:
            raise _Handover("no links")
        if detect and detect_format(parsed, self.path).name != FORMAT_NAME:
            raise _Handover("another format's sniff comes first")
        meta, nodes, edges = found
        columns = edges.columns()
        if np.any(columns["source"] == columns["target"]):
            raise _Handover("a self-loop")
        metadata = graph_metadata(meta, parsed, self.path, graph_id)
        return StreamedGraph(nodes, pd.DataFrame(columns, copy=False), metadata)

    def nodes(
        self, parsed: dict[str, Any]
    ) -> tuple[NeuronpediaMetadata, pd.DataFrame, dict[str, int]]:
        """Validate what came before ``links`` (its nodes then leave ``parsed``): the metadata,
        the nodes table and each node id's row (ids must be unique to be looked up)."""
        if "metadata" not in parsed or "nodes" not in parsed:
            raise _Handover("links before metadata or nodes")
        data = NeuronpediaGraphFile.model_validate({**parsed, "links": []})
        parsed["nodes"] = []  # the models hold them now, and then the table
        node_ids = [node.node_id for node in data.nodes]
        rows = {node_id: row for row, node_id in enumerate(node_ids)}
        if len(rows) != len(node_ids):
            raise _Handover("node ids repeat: links need resolve_links' order rule")
        return data.metadata, node_table(data.nodes, data.metadata), rows

    def links(self, rows: dict[str, int]) -> _Edges:
        """Read the links array (the cursor is at its ``[``) into node rows and weights:
        canonical runs in bulk, other links in batches through the strict parser (a batch
        doubles while links keep coming that way, so a file of them costs about what the
        whole-document path costs, and shrinks to one link when runs resume)."""
        chunks = self.chunks
        chunks.expect(b"[")
        edges = _Edges()
        if chunks.peek() == ord("]"):
            chunks.pos += 1
            return edges
        ids = _IdTable(rows)
        span, batch = FIRST_WINDOW, 1
        while True:
            # After "[" or ",": a run of canonical links (each with its comma), if any …
            size = min(span, len(chunks.buf) - chunks.pos)
            window = memoryview(chunks.buf)[chunks.pos : chunks.pos + size]
            run = _canonical_run(b"".join((window, _PADDING)), size, ids)
            window.release()
            if run is not None:
                edges.add_run(run)
                chunks.pos += run.consumed
                span, batch = min(2 * span, max(chunks.chunk_bytes, FIRST_WINDOW)), 1
                continue
            if size < span and chunks.more(span - size):
                continue  # the next link may have been cut short by the end of what was read
            # … else a batch of links through the strict parser.
            if self.strict_links(rows, edges, batch):
                return edges
            span, batch = FIRST_WINDOW, min(2 * batch, MAX_STRICT_BATCH)

    def strict_links(self, rows: dict[str, int], edges: _Edges, count: int) -> bool:
        """Up to ``count`` links cut out one by one, then parsed strictly together (as an
        array standing where ``links`` stands) and validated by ``NeuronpediaLink``; True when
        the array ended."""
        chunks = self.chunks
        texts = []
        ended = False
        while len(texts) < count and not ended:
            if chunks.peek() != ord("{"):
                raise _Handover("a link that is not an object")
            texts.append(chunks.value())
            byte = chunks.peek()
            chunks.pos += 1
            ended = byte == ord("]")
            if not ended and byte != ord(","):
                raise _Handover("expected , or ]")
        for link in _LINKS.validate_python(self.strict(b"[" + b",".join(texts) + b"]", 1)):
            source, target = rows.get(link.source), rows.get(link.target)
            if source is None or target is None:
                raise _Handover("a link to an unknown node id")
            edges.add_one(source, target, float(link.weight))
        return ended


def _another_format(keys: set[str]) -> bool:
    """Whether these top-level keys already make another format's sniff match (every sniff
    reads keys only; a false alarm only costs the whole-document path)."""
    skeleton = dict.fromkeys(keys)
    return any(imp.sniff(skeleton) for name, imp in IMPORTERS.items() if name != FORMAT_NAME)


def _canonical_run(window: bytes, size: int, ids: _IdTable) -> _Run | None:
    """The canonical links at the start of ``window[:size]``, each followed by its comma and
    the next link's ``{``; None when the first is not one (or is not whole in the window).
    ``window`` goes on with ``_PADDING``, so that rows gathered near the end stay inside it.

    Checked with array operations on a few bytes per link, never a Python object per link. Up
    to the first backslash every quote delimits a string (a canonical link has none, and an id
    with an escape goes through the strict parser), so link ``k`` is quotes ``10k … 10k + 10``:
    ``"source"``, ``:``, ``"id"``, ``,``, ``"target"``, ``:``, ``"id"``, ``,``, ``"weight"``,
    then ``: NUMBER }, {`` up to the next link's first quote (a link is whole only when that
    quote is in the window). With the first link's whitespace (files come from one formatter),
    everything but the ids and the number is fixed text, compared in four stretches; the run
    stops before the first link that breaks a check.
    """
    if not _CANONICAL.match(window, 0, size):
        return None  # the first link is not canonical (or not whole): a cheap early answer
    chars = np.frombuffer(window, dtype=np.uint8)
    slash = window.find(b"\\", 0, size)
    quotes = np.flatnonzero(chars[: slash if slash >= 0 else size] == _QUOTE)
    count = (len(quotes) - 1) // 10
    if count < 1 or not _OPEN.fullmatch(window, 0, int(quotes[0])):
        return None
    seps = [window[int(quotes[j]) + 1 : int(quotes[j + 1])] for j in range(1, 9, 2)]
    if not all(pattern.fullmatch(sep) for pattern, sep in zip(_SEPARATORS, seps)):
        return None
    shape = _WEIGHT.fullmatch(window, int(quotes[9]) + 1, int(quotes[10]))
    if shape is None:
        return None
    head, tail = shape.group(1), shape.group(2)
    if max(map(len, (*seps, head, tail))) > MAX_SEPARATOR_BYTES:
        return None  # whitespace beyond what _PADDING covers: the strict parser reads it
    at = [quotes[j : 10 * count + j : 10] for j in range(11)]  # at[j][k]: quote j of link k
    ok = np.ones(count, dtype=bool)
    for first, last, text in (
        (0, 2, b'"source"' + seps[0] + b'"'),
        (3, 6, b'"' + seps[1] + b'"target"' + seps[2] + b'"'),
        (7, 9, b'"' + seps[3] + b'"weight"'),
    ):
        ok &= (at[last] - at[first] == len(text) - 1) & _span_is(chars, at[first], text)
    starts, ends = at[9] + 1 + len(head), at[10] - len(tail)
    ok &= _span_is(chars, at[9] + 1, head) & _span_is(chars, ends, tail) & (ends > starts)
    good = _leading(ok)
    if good == 0:
        return None
    sources = ids.rows(chars, at[2][:good] + 1, at[3][:good])
    targets = ids.rows(chars, at[6][:good] + 1, at[7][:good])
    good = min(good, _leading(sources >= 0), _leading(targets >= 0))
    if good == 0:
        return None
    text, good = _literals(chars, starts[:good], ends[:good])
    if good == 0:
        return None
    weights, good = _weights(text)
    if good == 0:
        return None
    consumed = int(at[10][good - 1]) - len(tail) + tail.index(b",") + 1  # up to the next "{"
    return _Run(sources[:good], targets[:good], weights[:good], consumed)


_QUOTE = ord('"')
_SEPARATORS = (_COLON, _COMMA, _COLON, _COMMA)
_IS_NUMBER_CHAR = np.zeros(256, dtype=bool)
_IS_NUMBER_CHAR[list(_NUMBER_CHARS)] = True
_NUMBER_CHARS_OR_SPACE = _NUMBER_CHARS + b" "
# Longest number literal read in bulk (a float's shortest repr takes 24 characters at most),
# and longest whitespace-and-separator stretch between a link's strings.
MAX_LITERAL_BYTES = 64
MAX_SEPARATOR_BYTES = 64


def _leading(ok: np.ndarray) -> int:
    """How many entries lead before the first False."""
    return len(ok) if ok.all() else int(np.argmin(ok))


def _gather(chars: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """``chars[start : start + width]`` for every start, as rows (a copy). ``chars`` ends in
    ``_PADDING`` zero bytes, so every row of a start inside the window is whole."""
    rows = as_strided(chars, (len(chars) - width + 1, width), (1, 1), writeable=False)
    return rows[starts]


def _span_is(chars: np.ndarray, starts: np.ndarray, text: bytes) -> np.ndarray:
    """Whether ``text`` is at each start (compared as fixed-width strings: ``text`` holds no
    zero byte, so numpy's ignoring of trailing zeros cannot make a shorter row equal)."""
    return _gather(chars, starts, len(text)).view(f"S{len(text)}")[:, 0] == text


class _IdTable:
    """Node rows by the raw bytes of plain ids (those a file writes without escapes: no quote,
    backslash or control character; at most ``MAX_ID_BYTES``), looked up a run at a time.

    Each id is a zero-padded row of 64-bit words. Its hash picks a slot of an open-addressing
    table (an eighth full, so a probe or two finds nearly every id); the words are then
    compared in full, so a hash collision only sends a link to the strict parser. No bytes
    object and no Python call is made per link.
    """

    def __init__(self, rows: dict[str, int]) -> None:
        plain = [(k.encode("utf-8"), row) for k, row in rows.items() if _PLAIN_ID.fullmatch(k)]
        plain = [(k, row) for k, row in plain if len(k) <= MAX_ID_BYTES]
        self.words = max(1, -(-max((len(k) for k, _ in plain), default=1) // 8))
        self.width = 8 * self.words
        padded = b"".join(k.ljust(self.width, b"\0") for k, _ in plain)
        self.table = np.frombuffer(padded, dtype="<u8").reshape(len(plain), self.words)
        self.sizes = np.array([len(k) for k, _ in plain], dtype=np.int64)
        self.row_of = np.array([row for _, row in plain], dtype=np.int32)
        self.hashes = _hash(self.table, self.sizes)
        # masks[size]: the words of an id of that many bytes, the bytes after it zeroed
        ones = np.arange(self.width) < np.arange(self.width + 1)[:, None]
        self.masks = np.where(ones, 0xFF, 0).astype(np.uint8).view("<u8")
        bits = max(4, (8 * len(plain)).bit_length())  # at most 1/8 full
        self.shift, self.slot_mask = np.uint64(64 - bits), (1 << bits) - 1
        self.slots, self.probes = _open_addressing(self.hashes >> self.shift, 1 << bits)

    def rows(self, chars: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Node row of each id ``chars[start:end]``; -1 where none is certain (unknown, or an
        id for the strict parser)."""
        sizes = ends - starts
        fits = sizes <= self.width
        if len(self.table) == 0:
            return np.full(len(starts), -1, dtype=np.int32)
        words = _gather(chars, starts, self.width).view("<u8")
        words &= self.masks[np.minimum(sizes, self.width)]
        hashes = _hash(words, sizes)
        home = (hashes >> self.shift).astype(np.int64)
        found = self.slots[home]
        missed = np.flatnonzero((found < 0) | (self.hashes[found] != hashes))
        found[missed] = -1
        for probe in range(1, self.probes):
            if not len(missed):
                break
            row = self.slots[(home[missed] + probe) & self.slot_mask]
            hit = (row >= 0) & (self.hashes[row] == hashes[missed])
            found[missed[hit]] = row[hit]
            missed = missed[~hit]
        at = np.maximum(found, 0)
        same = fits & (found >= 0) & (self.sizes[at] == sizes)
        same &= (self.table[at] == words).all(axis=1)
        return np.where(same, self.row_of[at], -1)


def _hash(words: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """A 64-bit hash of zero-padded ids (wrapping multiply-add, then a final mix)."""
    mixed = (words * _HASH_MULTIPLIERS[: words.shape[1]]).sum(axis=1, dtype=np.uint64)
    mixed ^= sizes.astype(np.uint64) * _SIZE_MIX
    mixed ^= mixed >> np.uint64(31)
    return mixed * _SIZE_MIX


def _open_addressing(homes: np.ndarray, size: int) -> tuple[np.ndarray, int]:
    """Slots holding entry numbers (-1 empty) and how many probes reach every entry: in round
    ``d`` each entry not yet placed takes slot ``home + d`` if no entry holds it (the first
    claimant wins), so every entry sits within that many slots of its home."""
    slots = np.full(size, -1, dtype=np.int32)
    pending = np.arange(len(homes))
    probe = 0
    while len(pending):
        want = (homes[pending].astype(np.int64) + probe) & (size - 1)
        free = np.flatnonzero(slots[want] < 0)
        taken, first = np.unique(want[free], return_index=True)
        slots[taken] = pending[free[first]]
        placed = np.zeros(len(pending), dtype=bool)
        placed[free[first]] = True
        pending = pending[~placed]
        probe += 1
    return slots, probe


MAX_ID_BYTES = 256
# Zero bytes after a window, so that every fixed-width row gathered from a start inside it
# stays inside (ids, separators with their keys, literals); no id, key or number holds a zero
# byte, so the padding never matches.
_PADDING = bytes(MAX_ID_BYTES + 2 * MAX_SEPARATOR_BYTES + MAX_LITERAL_BYTES + 64)
_HASH_MULTIPLIERS = np.random.default_rng(20_240_601).integers(
    1, 2**63, MAX_ID_BYTES // 8 + 1, dtype=np.uint64
) | np.uint64(1)
_SIZE_MIX = np.uint64(0x9E3779B97F4A7C15)


def _literals(chars: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[bytes, int]:
    """The number literals ``chars[start:end]`` in order, apart by spaces, and how many lead
    that hold number characters only (and are at most ``MAX_LITERAL_BYTES`` long)."""
    sizes = ends - starts
    good = _leading(sizes <= MAX_LITERAL_BYTES)
    if good == 0:
        return b"", 0
    sizes = sizes[:good]
    rows = _gather(chars, starts[:good], int(sizes.max()) + 1)
    rows[np.arange(rows.shape[1]) >= sizes[:, None]] = ord(" ")  # one at least: a separator
    text = rows.tobytes()
    padding = rows.size - int(sizes.sum())
    if not text.translate(None, _NUMBER_CHARS_OR_SPACE) and text.count(b" ") == padding:
        return text, good
    # a space or another character inside a literal: the first such link and those after it
    # go through the strict parser
    inside = _IS_NUMBER_CHAR[rows] & (np.arange(rows.shape[1]) < sizes[:, None])
    good = _leading(inside.sum(axis=1) == sizes)
    return rows[:good].tobytes(), good


def _weights(text: bytes) -> tuple[np.ndarray, int]:
    """The weights of number literals apart by spaces, and how many lead that read exactly as
    the strict reader reads them. The first that does not (outside JSON's grammar,
    non-finite, an integer that may pass 64 bits) goes through the strict parser, which
    refuses it or reads it."""
    literals = text.split()
    try:
        weights = np.fromiter(map(float, literals), np.float64, len(literals))
    except ValueError:
        good = next(i for i, literal in enumerate(literals) if not _is_float(literal))
        literals = literals[:good]
        weights = np.fromiter(map(float, literals), np.float64, good)
        text = b" ".join(literals)
    good = min(len(literals), _first_not_json_number(text, literals))
    unusual = np.flatnonzero(~(np.abs(weights[:good]) < _BIG) | (weights[:good] == 0))
    for i in unusual.tolist():
        literal = literals[i]
        if literal == b"-0":  # an integer: the strict reader's int 0 is +0.0
            weights[i] = 0.0
        elif weights[i] != 0 and not (b"." in literal or b"e" in literal or b"E" in literal):
            good = min(good, i)  # an integer of 19 digits or more: the strict reader decides
        elif not np.isfinite(weights[i]):
            good = min(good, i)  # 1e400: refused there
    return weights, good


def _is_float(literal: bytes) -> bool:
    try:
        float(literal)
    except ValueError:
        return False
    return True


def _first_not_json_number(text: bytes, literals: list[bytes]) -> int:
    """Index of the first literal outside JSON's number grammar (``len`` when none is).

    ``float`` has already read every literal, and they hold number characters only; what
    ``float`` takes and JSON does not is then a leading ``+``, a ``.`` without a digit on each
    side, and a leading zero before another digit. Those three are checked on all of ``text``
    (the literals joined by spaces) at once; the regular expression only runs to find the
    first offender.
    """
    chars = np.frombuffer(b" " + text + b" ", dtype=np.uint8)
    digit = (chars >= ord("0")) & (chars <= ord("9"))
    dots = np.flatnonzero(chars == ord("."))
    pluses = np.flatnonzero(chars == ord("+"))
    zeros = np.flatnonzero((chars[:-1] == ord("0")) & digit[1:])  # a zero before a digit
    before = chars[zeros - 1]
    first = (before == ord(" ")) | ((before == ord("-")) & (chars[np.maximum(zeros - 2, 0)] == 32))
    bad = (
        not np.all(digit[dots - 1] & digit[dots + 1])
        or not np.all((chars[pluses - 1] == ord("e")) | (chars[pluses - 1] == ord("E")))
        or bool(np.any(first))
    )
    if not bad:
        return len(literals)
    return next(i for i, literal in enumerate(literals) if not _NUMBER.fullmatch(literal))
