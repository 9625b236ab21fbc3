"""One registry of importers: a new file format is one module plus one ``register`` call.

Each importer names itself, says whether a parsed JSON document is its format (``sniff``), and
turns the document into a :class:`~circuit_atlas.graph.CircuitGraph`. The CLI's ``--format``
choices come from here.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from circuit_atlas.errors import ImportFormatError, InvalidGraphError
from circuit_atlas.graph import CircuitGraph, shown


@dataclass(frozen=True)
class Importer:
    name: str
    description: str
    sniff: Callable[[Any], bool]
    parse: Callable[[Any, Path, str | None], CircuitGraph]
    # Optional: reads a JSON file of this format without building its whole document, given
    # (path, whether the format must still be detected, graph_id); returns None to hand the file
    # to the whole-document path, which then decides (and words every refusal). See load_graph.
    stream: Callable[[Path, bool, str | None], CircuitGraph | None] | None = None


IMPORTERS: dict[str, Importer] = {}
# How to read a file into a document, by suffix; JSON (optionally gzipped) unless listed here.
READERS: dict[str, Callable[[Path], Any]] = {}
# Record classes a ``.pt`` file may name besides tensors and plain data, by (module, name): each
# importer of a ``.pt`` format adds stand-ins for its peer tool's classes. The ``.pt`` reader
# runs before the format is known, so it must pass these to ``load_torch_file`` as its
# ``stand_ins`` (every format's names, and only those).
PT_STAND_INS: dict[tuple[str, str], Any] = {}


def register(importer: Importer) -> Importer:
    IMPORTERS[importer.name] = importer
    return importer


def register_reader(suffix: str, reader: Callable[[Path], Any]) -> None:
    READERS[suffix] = reader


def register_pt_stand_ins(stand_ins: Mapping[tuple[str, str], Any]) -> None:
    """Let ``.pt`` files name these classes (see ``PT_STAND_INS``); two importers may not
    stand in differently for one name."""
    for name, stand_in in stand_ins.items():
        if PT_STAND_INS.setdefault(name, stand_in) is not stand_in:
            raise ValueError(f"two importers stand in for {'.'.join(name)}")


def read_document(path: Path) -> Any:
    """The parsed document of a graph file: a binary reader by suffix, else JSON."""
    return READERS.get(path.suffix, read_json)(path)


def graph_file_suffixes() -> tuple[str, ...]:
    """File endings the importers read (what ``ingest FOLDER`` picks up)."""
    return (".json", ".json.gz", *READERS)


# Limits of the JSON reader. Real graph files nest 4 levels deep (file → nodes → node → …);
# Python's json module recurses in C, so a deeper file would crash it (RecursionError) instead
# of being refused. 64 leaves room for any format while keeping the parser far from that limit.
MAX_JSON_DEPTH = 64
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# Sanity bounds on a model's configuration as a file states it (the largest public models have
# about 130 layers and 128 heads; a value beyond these is a broken file, not a big model).
MAX_LAYERS = 10_000
MAX_HEADS = 10_000

_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]', re.DOTALL)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A \uD800-\uDFFF escape that is not half of a surrogate pair: JSON lets it through, but the
# string it makes cannot be encoded (pandas, the database driver and the bulk path all fail).
# A prefilter only (an escaped backslash before "u" also matches); the walk below decides.
# Both branches start with the literal "\\u" so the search skips ahead fast.
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"(?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2})"
)


def json_path(parts: list[str | int | None]) -> str:
    """``["nodes", 3, "activation"]`` → ``nodes[3].activation`` (the style of pydantic errors)."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part is None:
            out += ".?"
        elif _IDENTIFIER.fullmatch(part):
            out += f".{part}"
        else:
            out += f"[{shown(part)}]"
    return out.lstrip(".") or "<top>"


class _Refused:
    """Stands in for a value the reader refuses (a duplicate key, a non-finite number, an
    integer beyond 64 bits), so that its JSON path can be found once the whole file is parsed:
    json's hooks see values, never where they are."""

    __slots__ = ("problem", "key")

    def __init__(self, problem: str, key: str | None = None) -> None:
        self.problem = problem
        self.key = key


def _find_first(
    document: Any, bad: Callable[[Any], bool]
) -> tuple[list[str | int | None], Any] | None:
    """Path and value of the first value (or key) in document order for which ``bad`` is true.

    Iterative, so any depth is fine; only run once something is known to be wrong."""
    stack: list[tuple[list[str | int | None], Any]] = [([], document)]
    while stack:
        path, value = stack.pop()
        if bad(value):
            return path, value
        if isinstance(value, dict):
            for key in value:
                if bad(key):
                    return [*path, key], key
            stack.extend(([*path, k], v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend(([*path, i], v) for i, v in reversed(list(enumerate(value))))
    return None


def _unencodable(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


# Byte classes for the nesting scan: 1 quote, 2 backslash, 3 opening and 4 closing bracket.
_QUOTE, _SLASH, _OPEN, _CLOSE = 1, 2, 3, 4
_CLASS_OF = {ord('"'): _QUOTE, ord("\\"): _SLASH}
_CLASS_OF |= dict.fromkeys(b"[{", _OPEN) | dict.fromkeys(b"]}", _CLOSE)
_BYTE_CLASS = bytes(_CLASS_OF.get(b, 0) for b in range(256))


def _nesting_depth(raw: bytes) -> int:
    """How many arrays/objects the file opens inside each other, brackets in strings aside.

    Done on the bytes, before parsing, with one ``bytes.translate`` and array operations on the
    few structural bytes (the parser itself would hit Python's recursion limit on a hostile
    file; a regular expression over every string took longer than parsing). Exact for UTF-8:
    quote, backslash and bracket bytes never occur inside a multi-byte character.
    """
    classes = np.frombuffer(raw.translate(_BYTE_CLASS), dtype=np.uint8)
    where = np.flatnonzero(classes)
    kinds = classes[where]
    quotes = where[kinds == _QUOTE]
    slashes = where[kinds == _SLASH]
    if len(slashes):  # a quote after an odd run of backslashes is inside its string
        first_of_run = np.ones(len(slashes), dtype=bool)
        first_of_run[1:] = np.diff(slashes) != 1
        run_start = np.maximum.accumulate(np.where(first_of_run, np.arange(len(slashes)), 0))
        at = np.minimum(np.searchsorted(slashes, quotes - 1), len(slashes) - 1)
        run = np.where(slashes[at] == quotes - 1, at - run_start[at] + 1, 0)
        quotes = quotes[run % 2 == 0]
    is_bracket = kinds >= _OPEN
    brackets, bracket_kinds = where[is_bracket], kinds[is_bracket]
    outside = np.searchsorted(quotes, brackets, side="right") % 2 == 0
    if not outside.any():
        return 0
    steps = np.where(bracket_kinds[outside] == _OPEN, 1, -1)
    return int(np.cumsum(steps).max())


def _where_too_deep(text: str, limit: int) -> str:
    """The JSON path of the first array/object that opens level ``limit + 1`` (slow; only run
    on a file already known to be too deep)."""
    stack: list[list[Any]] = []  # per open container: [is_object, current key or index]
    expect_key = False
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token == "[" or token == "{":
            if len(stack) == limit:
                parts = [entry[1] for entry in stack]
                path = json_path(parts[:8]) + ("…" if len(parts) > 8 else "")
                return path
            stack.append([token == "{", None if token == "{" else 0])
            expect_key = token == "{"
        elif token == "]" or token == "}":
            if stack:
                stack.pop()
            expect_key = False
        elif token == ",":
            if stack and stack[-1][0]:
                expect_key = True
            elif stack:
                stack[-1][1] = int(stack[-1][1]) + 1
        elif token == ":":
            expect_key = False
        elif expect_key and stack:
            try:
                stack[-1][1] = json.loads(token)
            except ValueError:
                stack[-1][1] = token[1:-1]
            expect_key = False
    return "<top>"


def _read_text(path: Path) -> tuple[bytes, str]:
    """The file's bytes (gunzipped) and their UTF-8 text; failures are one-line errors."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                raw = handle.read()
        else:
            raw = path.read_bytes()
        return raw, raw.decode("utf-8")
    except FileNotFoundError:
        raise ImportFormatError(path, "no such file") from None
    except IsADirectoryError:
        raise ImportFormatError(path, "is a directory, not a graph file") from None
    except UnicodeDecodeError as exc:
        raise ImportFormatError(path, f"not UTF-8 text ({exc.reason})") from None
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise ImportFormatError(path, f"damaged gzip file ({exc})") from None
    except OSError as exc:
        raise ImportFormatError(path, f"cannot be read ({exc.strerror or exc})") from None


def read_json(path: Path) -> Any:
    """Parse a JSON file, turning every failure into a one-line error naming the file.

    Stricter than ``json.load``, because its leniencies silently change a graph:

    * a key twice in one object: json keeps the last value (a second ``"links": []`` emptied a
      graph), other readers the first; refused, naming the key's path;
    * ``NaN``/``Infinity`` literals (not JSON) and numbers beyond a float (``1e400`` is read as
      infinity): refused, since every quantity in a graph file is finite;
    * integers outside 64 bits: refused (they cannot be stored, and the database would fail on
      them long after parsing); checked on the digits, never converting a 100,000-digit number;
    * nesting deeper than ``MAX_JSON_DEPTH``: refused before parsing (the parser recurses);
    * a lone surrogate escape (``"\\ud800"``): the string cannot be encoded, and pandas, the
      driver and the bulk path would fail on it with an internal error.
    """
    raw, text = _read_text(path)
    return parse_json_text(raw, text, path)


def parse_json_text(raw: bytes, text: str, path: Path, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """:func:`read_json`'s strict parse of one JSON text (``raw`` is its UTF-8 bytes).

    Also what the streaming Neuronpedia reader (``neuronpedia_stream``) applies to each
    top-level value and each unusual link it cuts out of a file, with ``max_depth`` lowered by
    the levels around it, so that a value passes there exactly when it passes here.
    """
    if _nesting_depth(raw) > max_depth:
        where = _where_too_deep(text, max_depth)
        raise ImportFormatError(
            path,
            f"field {where}: arrays/objects nested more than {max_depth} levels deep "
            "(graph files nest 4)",
        )
    refused: list[_Refused] = []

    def refuse(problem: str, key: str | None = None) -> _Refused:
        marker = _Refused(problem, key)
        refused.append(marker)
        return marker

    def parse_float(literal: str) -> float | _Refused:
        value = float(literal)
        if math.isfinite(value):
            return value
        cut = literal if len(literal) <= 40 else f"{literal[:40]}…"
        return refuse(f"{cut} is beyond the range of a 64-bit float (it would read as infinity)")

    def parse_int(literal: str) -> int | _Refused:
        digits = len(literal.lstrip("-"))
        if digits < 19:
            return int(literal)
        value = int(literal) if digits == 19 else None
        if value is not None and INT64_MIN <= value <= INT64_MAX:
            return value
        return refuse(f"integer of {digits:,} digits is outside the 64-bit range")

    def parse_constant(name: str) -> _Refused:
        return refuse(f"{name} is not a number JSON allows (values must be finite)")

    def make_object(pairs: list[tuple[str, Any]]) -> dict[str, Any] | _Refused:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        key = _first_repeated(k for k, _ in pairs)
        return refuse(
            "duplicate key: it appears more than once in one object, and JSON readers "
            "disagree on which value counts",
            key,
        )

    try:
        document = json.loads(
            text,
            parse_float=parse_float,
            parse_int=parse_int,
            parse_constant=parse_constant,
            object_pairs_hook=make_object,
        )
    except json.JSONDecodeError as exc:
        ends_early = exc.pos >= len(exc.doc.rstrip()) - 1 or exc.msg.startswith("Unterminated")
        problem = "truncated JSON" if ends_early else "invalid JSON"
        raise ImportFormatError(
            path, f"{problem}: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:  # cannot happen below MAX_JSON_DEPTH; kept as a one-line error
        raise ImportFormatError(path, "nested too deeply for the JSON parser") from None
    if refused:
        found = _find_first(document, lambda value: isinstance(value, _Refused))
        parts, marker = found if found is not None else ([], refused[0])
        if marker.key is not None:
            parts = [*parts, marker.key]
        raise ImportFormatError(path, f"field {json_path(parts)}: {marker.problem}")
    if _LONE_SURROGATE.search(raw) and (found := _find_first(document, _unencodable)):
        raise ImportFormatError(
            path,
            f"field {json_path(found[0])}: a \\u escape makes half of a surrogate pair, which "
            "is not text (it cannot be encoded as UTF-8)",
        )
    return document


def file_stem(path: Path) -> str:
    """``a/b.json.gz`` → ``b``: the default graph id of a file without one of its own."""
    name = path.name
    for suffix in (".gz", ".json", *READERS):
        name = name.removesuffix(suffix)
    return name


def describe_validation_error(exc: ValidationError) -> str:
    """First problem of a pydantic error as ``field.path: message`` (one line)."""
    first = exc.errors()[0]
    loc = json_path(list(first["loc"]))
    extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    value = first.get("input")
    if isinstance(value, str):
        got = f", got {shown(value)}"
    elif isinstance(value, (int, float, bool)) or value is None:
        got = f", got {value!r}"
    else:
        got = ""
    return f"field {loc}: {first['msg']}{got}{extra}"


def detect_format(document: Any, path: Path) -> Importer:
    for importer in IMPORTERS.values():
        if importer.sniff(document):
            return importer
    known = ", ".join(IMPORTERS)
    raise ImportFormatError(path, f"not a recognised graph format (known: {known})")


def load_graph(
    path: str | Path, fmt: str | None = None, graph_id: str | None = None
) -> CircuitGraph:
    """Read one file into a validated ``CircuitGraph``; every failure names the file.

    A ``.json``/``.json.gz`` file of a format with a streaming reader (``Importer.stream``) is
    read by it, in chunks, so that peak memory follows the graph's arrays rather than the parsed
    document; the reader hands anything unusual, every refusal included, to
    :func:`load_document_graph`, so the result and the errors are the same either way.
    """
    path = Path(path)
    graph = _streamed(path, fmt, graph_id)
    return graph if graph is not None else load_document_graph(path, fmt, graph_id)


def _streamed(path: Path, fmt: str | None, graph_id: str | None) -> CircuitGraph | None:
    """The graph from a streaming reader, or None when none applies or it handed over."""
    if path.suffix in READERS or not path.name.endswith((".json", ".json.gz")):
        return None
    if fmt is None:
        readers = [imp.stream for imp in IMPORTERS.values() if imp.stream is not None]
    else:
        stream = IMPORTERS[fmt].stream if fmt in IMPORTERS else None
        readers = [stream] if stream is not None else []
    for read in readers:
        graph = read(path, fmt is None, graph_id)
        if graph is not None:
            return graph
    return None


def load_document_graph(
    path: str | Path, fmt: str | None = None, graph_id: str | None = None
) -> CircuitGraph:
    """:func:`load_graph` through the whole parsed document (the strict reference path)."""
    path = Path(path)
    document = read_document(path)
    if fmt is None:
        importer = detect_format(document, path)
    else:
        try:
            importer = IMPORTERS[fmt]
        except KeyError:
            raise ImportFormatError(path, f"unknown format {fmt!r}") from None
    try:
        return importer.parse(document, path, graph_id)
    except ValidationError as exc:
        raise ImportFormatError(path, describe_validation_error(exc)) from None
    except InvalidGraphError as exc:
        raise ImportFormatError(path, str(exc)) from None


def _first_repeated(items: Iterable[str]) -> str:
    """The first item seen twice (the caller knows there is one)."""
    seen: set[str] = set()
    for item in items:
        if item in seen:
            return item
        seen.add(item)
    raise ValueError("no repeated item")
