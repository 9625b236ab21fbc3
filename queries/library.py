"""The named Cypher query library: ``queries/*.cypher`` files, their headers, and running them.

Each file starts with a comment header that is the query's documentation *and* its contract::

    // One-line purpose.
    //
    // Free text: what it answers, how ties are broken.
    //
    // @param graph_id: string — the graph
    // @param k: int = 10 (1..1000) — number of rows
    // @bound max_length: int = 3 (1..6) — longest path, in edges
    // @columns nodes, weights, product

A query may have a variant for one server, ``NAME@BACKEND.cypher`` (e.g. ``search_labels@neo4j``
uses Neo4j's full-text index, which ArcadeDB lacks): same header, checked equal, another body;
``run_query`` picks the body for the store's backend (``CircuitStore.backend``).

``@param`` values always travel as Cypher parameters. ``@bound`` values are the one exception:
Cypher forbids parameters in variable-length bounds (``[:EDGE*1..$n]``), so a bound is validated
as an integer inside its declared range and only then substituted for ``{{name}}`` — nothing
else is ever formatted into query text.

Runaway queries are guarded three ways: every library query is read-only, bounds its path lengths
and ends in ``LIMIT $param`` with a declared range (all checked when the file is loaded, see
``cost_limits.py``), and the runner stops it after a timeout (``DEFAULT_TIMEOUT_S``, see
``CircuitStore.query``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import pandas as pd

from circuit_atlas.errors import CircuitAtlasError, QueryTimeout
from circuit_atlas.queries.cost_limits import limit_problem, path_length_problem
from circuit_atlas.store.cypher_guard import assert_read_only

if TYPE_CHECKING:
    from circuit_atlas.store import CircuitStore

DEFAULT_TIMEOUT_S = 60.0  # the CLI's --timeout default too (cli/options.py)
_PARAM = re.compile(
    r"^// @(?P<role>param|bound) (?P<name>\w+): (?P<type>[\w<>]+)"
    r"(?: = (?P<default>\S+))?(?: \((?P<lo>-?[\d.]+)\.\.(?P<hi>-?[\d.]+)\))? — (?P<doc>.+)$"
)
TYPES = ("string", "int", "float", "bool", "list<string>", "list<int>")


class QueryError(CircuitAtlasError):
    """A named query was asked for wrongly: unknown name, missing or mistyped parameter."""


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    doc: str
    required: bool
    default: Any = None
    low: float | None = None
    high: float | None = None
    structural: bool = False  # a @bound: substituted into the text after validation

    def describe(self) -> str:
        default = "required" if self.required else f"default {json.dumps(self.default)}"
        span = "" if self.low is None else f", {self.low:g}..{self.high:g}"
        return f"{self.name} ({self.type}, {default}{span}): {self.doc}"


@dataclass(frozen=True)
class NamedQuery:
    name: str
    purpose: str
    description: str
    parameters: tuple[Parameter, ...]
    columns: tuple[str, ...]
    body: str
    variants: tuple[tuple[str, str], ...] = ()  # (backend, body) that replaces ``body`` there

    def body_for(self, backend: str | None) -> str:
        return dict(self.variants).get(backend or "", self.body)

    def expected(self) -> str:
        return "; ".join(p.describe() for p in self.parameters)

    def render(
        self, values: dict[str, Any], backend: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Validate ``values`` against the header; return (Cypher text for ``backend``'s
        server, parameters)."""
        known = {p.name for p in self.parameters}
        unknown = sorted(set(values) - known)
        if unknown:
            raise QueryError(
                f"query {self.name!r} has no parameter {', '.join(map(repr, unknown))}; "
                f"expected: {self.expected()}"
            )
        text, params = self.body_for(backend), {}
        for parameter in self.parameters:
            if parameter.name in values:
                value = check_value(self, parameter, values[parameter.name])
            elif parameter.required:
                raise QueryError(
                    f"query {self.name!r} needs parameter {parameter.name!r}; "
                    f"expected: {self.expected()}"
                )
            else:
                value = parameter.default
            if parameter.structural:
                text = text.replace("{{" + parameter.name + "}}", str(int(value)))
            else:
                params[parameter.name] = value
        return text, params


def mistyped(query: NamedQuery, name: str, problem: str) -> QueryError:
    """The error for a bad value: what is wrong, then every parameter the query expects."""
    return QueryError(
        f"query {query.name!r}: parameter {name!r} {problem}; expected: {query.expected()}"
    )


def check_value(query: NamedQuery, parameter: Parameter, value: Any) -> Any:
    """Type- and range-check one value; ints are accepted for floats."""
    kind = parameter.type
    if value is None:
        if parameter.required or parameter.structural:
            raise mistyped(query, parameter.name, "cannot be null")
        return None
    ok = {
        "string": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "list<string>": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "list<int>": isinstance(value, list)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
    }[kind]
    if not ok:
        shown = json.dumps(value, default=repr)
        raise mistyped(query, parameter.name, f"must be {kind}, got {shown}")
    if kind == "float":
        value = float(value)
    low, high = parameter.low, parameter.high
    if low is not None and high is not None and not low <= value <= high:
        span = f"{low:g}..{high:g}"
        raise mistyped(query, parameter.name, f"is {value}, outside {span}")
    return value


def coerce_text(query: NamedQuery, name: str, text: str) -> Any:
    """A command-line ``name=text`` value, read according to the declared type.

    Only the reading happens here; :func:`check_value` (called by ``render``) checks the type
    and range, so a command-line value and a Python value fail with the same message.
    """
    parameter = next((p for p in query.parameters if p.name == name), None)
    if parameter is None:
        raise QueryError(
            f"query {query.name!r} has no parameter {name!r}; expected: {query.expected()}"
        )
    if text == "null":
        return None
    if parameter.type == "string":
        return text
    if parameter.type.startswith("list<"):
        try:
            value = json.loads(text)
        except ValueError:
            value = [v.strip() for v in text.split(",") if v.strip()]
        if parameter.type == "list<int>" and isinstance(value, list):
            try:
                value = [int(v) for v in value]
            except (TypeError, ValueError):
                raise mistyped(query, name, f"must be list<int>, got {text!r}") from None
        return value
    try:
        return json.loads(text)
    except ValueError:
        raise mistyped(query, name, f"must be {parameter.type}, got {text!r}") from None


def parse_query(name: str, text: str) -> NamedQuery:
    header = []
    for line in text.splitlines():
        if not line.startswith("//"):
            break
        header.append(line)
    body = "\n".join(text.splitlines()[len(header) :]).strip()
    if not header:
        raise QueryError(f"query file {name}.cypher has no header comment")
    purpose = header[0].removeprefix("//").strip()
    description, parameters, columns = [], [], ()
    for line in header[1:]:
        match = _PARAM.match(line)
        if match:
            if match["type"] not in TYPES:
                raise QueryError(f"{name}.cypher: unknown type {match['type']!r}")
            default = json.loads(match["default"]) if match["default"] is not None else None
            parameters.append(
                Parameter(
                    name=match["name"],
                    type=match["type"],
                    doc=match["doc"],
                    required=match["default"] is None,
                    default=default,
                    low=float(match["lo"]) if match["lo"] else None,
                    high=float(match["hi"]) if match["hi"] else None,
                    structural=match["role"] == "bound",
                )
            )
        elif line.startswith("// @columns "):
            columns = tuple(c.strip() for c in line.removeprefix("// @columns ").split(","))
        elif line.startswith("// @"):
            raise QueryError(f"{name}.cypher: malformed header line {line!r}")
        else:
            description.append(line.removeprefix("//").strip())
    for parameter in parameters:
        if parameter.structural and "{{" + parameter.name + "}}" not in body:
            raise QueryError(f"{name}.cypher: bound {parameter.name!r} is not used as {{{{...}}}}")
    assert_read_only(re.sub(r"\{\{\w+\}\}", "1", body))
    for problem in (limit_problem(body, parameters), path_length_problem(body, parameters)):
        if problem is not None:
            raise QueryError(f"{name}.cypher: {problem}")
    return NamedQuery(
        name, purpose, "\n".join(description).strip(), tuple(parameters), columns, body
    )


@cache
def library() -> dict[str, NamedQuery]:
    """Every ``.cypher`` file shipped in this package, by name."""
    found: dict[str, NamedQuery] = {}
    variants: list[tuple[str, str, NamedQuery]] = []
    package = __name__.rpartition(".")[0]
    for entry in sorted(resources.files(package).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".cypher"):
            name = entry.name.removesuffix(".cypher")
            base, _, backend = name.partition("@")
            query = parse_query(name, entry.read_text())
            if backend:
                variants.append((base, backend, query))
            else:
                found[name] = query
    for base, backend, variant in variants:
        query = found.get(base)
        if query is None:
            raise QueryError(f"{base}@{backend}.cypher: no {base}.cypher to be a variant of")
        if (variant.parameters, variant.columns) != (query.parameters, query.columns):
            raise QueryError(f"{base}@{backend}.cypher: its header differs from {base}.cypher")
        found[base] = replace(query, variants=(*query.variants, (backend, variant.body)))
    return found


def get_query(name: str) -> NamedQuery:
    queries = library()
    if name not in queries:
        raise QueryError(f"no query named {name!r}; known queries: {', '.join(queries)}")
    return queries[name]


def reads_summaries(query: NamedQuery) -> bool:
    """Whether ``query`` reads the per-graph aggregates the store keeps
    (``circuit_atlas/store/summaries.py``) rather than the edges themselves."""
    return any(label in query.body for label in (":GraphSummary", ":LayerPair"))


def _refuse_unsummarised(store: CircuitStore, query: NamedQuery, values: dict[str, Any]) -> None:
    """A query that reads summaries would silently leave out a graph stored before they
    existed: refuse instead, naming the graphs and the command that adds them."""
    if not reads_summaries(query):
        return
    missing = store.graphs_without_summaries()
    if "graph_id" in values:
        missing = [gid for gid in missing if gid == values["graph_id"]]
    elif values.get("graph_ids"):
        missing = [gid for gid in missing if gid in values["graph_ids"]]
    if missing:
        shown = ", ".join(map(repr, missing[:5])) + (" …" if len(missing) > 5 else "")
        raise QueryError(
            f"query {query.name!r} reads the summaries the store keeps per graph, and "
            f"{len(missing)} graph(s) were stored by an older Circuit Atlas without them "
            f"({shown}): run `circuit-atlas upgrade` to add them"
        )


def run_query(
    store: CircuitStore,
    name: str,
    params: dict[str, Any] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> pd.DataFrame:
    """Run a named query read-only and return its rows as a DataFrame (columns as declared)."""
    query = get_query(name)
    text, values = query.render(params or {}, store.backend)
    _refuse_unsummarised(store, query, values)
    try:
        rows = store.query(text, values, timeout_s=timeout_s)
    except QueryTimeout as exc:
        raise QueryTimeout(f"{name}: {exc}") from None
    return pd.DataFrame(rows, columns=list(query.columns) or None)
