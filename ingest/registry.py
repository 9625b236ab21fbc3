"""One registry of importers: a new file format is one module plus one ``register`` call.

Each importer names itself, says whether a parsed JSON document is its format (``sniff``), and
turns the document into a :class:`~circuit_atlas.graph.CircuitGraph`. The CLI's ``--format``
choices come from here.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from circuit_atlas.errors import ImportFormatError, InvalidGraphError
from circuit_atlas.graph import CircuitGraph


@dataclass(frozen=True)
class Importer:
    name: str
    description: str
    sniff: Callable[[Any], bool]
    parse: Callable[[Any, Path, str | None], CircuitGraph]


IMPORTERS: dict[str, Importer] = {}
# How to read a file into a document, by suffix; JSON (optionally gzipped) unless listed here.
READERS: dict[str, Callable[[Path], Any]] = {}


def register(importer: Importer) -> Importer:
    IMPORTERS[importer.name] = importer
    return importer


def register_reader(suffix: str, reader: Callable[[Path], Any]) -> None:
    READERS[suffix] = reader


def read_document(path: Path) -> Any:
    """The parsed document of a graph file: a binary reader by suffix, else JSON."""
    return READERS.get(path.suffix, read_json)(path)


def graph_file_suffixes() -> tuple[str, ...]:
    """File endings the importers read (what ``ingest FOLDER`` picks up)."""
    return (".json", ".json.gz", *READERS)


def _reject_constant(name: str) -> float:
    # json accepts NaN/Infinity literals by default; weights must be finite numbers.
    return math.nan if name == "NaN" else math.inf


def read_json(path: Path) -> Any:
    """Parse a JSON file, turning every failure into a one-line error naming the file."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            return json.load(handle, parse_constant=_reject_constant)
    except FileNotFoundError:
        raise ImportFormatError(path, "no such file") from None
    except IsADirectoryError:
        raise ImportFormatError(path, "is a directory, not a graph file") from None
    except UnicodeDecodeError as exc:
        raise ImportFormatError(path, f"not UTF-8 text ({exc.reason})") from None
    except (gzip.BadGzipFile, EOFError) as exc:
        raise ImportFormatError(path, f"damaged gzip file ({exc})") from None
    except json.JSONDecodeError as exc:
        ends_early = exc.pos >= len(exc.doc.rstrip()) - 1 or exc.msg.startswith("Unterminated")
        problem = "truncated JSON" if ends_early else "invalid JSON"
        raise ImportFormatError(
            path, f"{problem}: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def file_stem(path: Path) -> str:
    """``a/b.json.gz`` → ``b``: the default graph id of a file without one of its own."""
    name = path.name
    for suffix in (".gz", ".json", *READERS):
        name = name.removesuffix(suffix)
    return name


def describe_validation_error(exc: ValidationError) -> str:
    """First problem of a pydantic error as ``field.path: message`` (one line)."""
    first = exc.errors()[0]
    loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
    extra = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    value = first.get("input")
    shown = (
        f", got {value!r}" if isinstance(value, (str, int, float, bool)) or value is None else ""
    )
    return f"field {loc or '<top>'}: {first['msg']}{shown}{extra}"


def detect_format(document: Any, path: Path) -> Importer:
    for importer in IMPORTERS.values():
        if importer.sniff(document):
            return importer
    known = ", ".join(IMPORTERS)
    raise ImportFormatError(path, f"not a recognised graph format (known: {known})")


def load_graph(
    path: str | Path, fmt: str | None = None, graph_id: str | None = None
) -> CircuitGraph:
    """Read one file into a validated ``CircuitGraph``; every failure names the file."""
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
