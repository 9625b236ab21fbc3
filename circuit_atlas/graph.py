"""``CircuitGraph``: the in-memory circuit every part of Circuit Atlas exchanges.

A circuit graph is three things:

* a **nodes table** (``pandas.DataFrame``, one row per node). A node's identity is the typed
  tuple ``NodeKey(kind, layer, pos, feature, head)``; it is unique within a graph. Fields that do
  not apply to a kind are ``None`` (an error node has no feature index, an MLP component node has
  no position). Display ids (``display_id``) are *derived* from the key for people to read; they
  are never used to look a node up, so two nodes can never collide the way string ids such as
  ``"{layer}_{feature}_{pos}"`` do in some exporters.
* a **sparse weighted adjacency**, stored as an edge table (``source``, ``target``, ``weight``,
  ``channel`` and optional extra columns). ``channel`` separates parallel edges between the same
  two nodes, e.g. the ``q``/``k``/``v`` inputs of an attention head in a component graph; it is
  ``""`` when an edge has no channel.
* **metadata** (:class:`GraphMetadata`): model, prompt, tokens, method, source tool, thresholds.

Orientation convention
    ``adjacency()`` returns ``A`` with ``A[target, source] = weight``: row = the node receiving the
    effect, column = the node causing it. This is circuit-tracer's convention, so its formulas
    (influence ``wᵀ Σ Âᵏ``, row normalisation) apply unchanged. Edges run from upstream
    (embeddings) to downstream (logits).

What every graph must satisfy (:meth:`CircuitGraph.validate`, run on construction, so on every
graph an importer, an attribution job or an analysis builds before it can be stored): known
kinds with their key fields, non-negative key fields, unique identities, edges between existing
nodes, no self-loops (no format stored here has them: attribution graphs and component graphs
run from earlier to later nodes, and ROI quotients drop intra-ROI edges), finite weights, no
infinite node or edge values (NaN in a float column means "missing"), ``token_prob`` in
[0, 1], and strings small enough for the database (see ``MAX_STRING_BYTES``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from circuit_atlas.errors import InvalidGraphError

if TYPE_CHECKING:  # imported where used: every CLI command loads this module
    import networkx as nx
    import scipy.sparse as sp

# Size limits on what reaches the database. A Neo4j/ArcadeDB server drops a Bolt message over
# 16 MB and the client then waits forever, so no single value may come near that: one string
# (label, token, prompt, …) at most 1 MiB as UTF-8, far above any real one (labels are tens of
# characters, prompts a few hundred). The graph id is repeated in every stored node row, and the
# Bolt writer sends 20,000 rows per message: 256 bytes of id add 5 MB to such a message (real
# ids are slugs of at most ~60 characters). The metadata is stored twice on the :Graph node
# (its fields and ``metadata_json``), so 4 MiB of it keeps that message under 16 MB.
MAX_STRING_BYTES = 1 << 20
MAX_GRAPH_ID_BYTES = 256
MAX_METADATA_BYTES = 4 << 20
_METADATA_STRINGS = (
    "graph_id",
    "model",
    "prompt",
    "method",
    "source_tool",
    "source_version",
    "source_format",
    "transcoder_set",
    "created_at",
)


def shown(text: str, limit: int = 60) -> str:
    """``repr`` of a string from outside, cut to ``limit`` characters: messages stay one short
    line even when the string is megabytes long or holds newlines."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}… ({len(text):,} characters)"


def string_problem(text: str, limit: int = MAX_STRING_BYTES) -> str | None:
    """Why ``text`` cannot be stored (too long as UTF-8, or not encodable at all), or None."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid Unicode text (it holds a lone surrogate such as \\ud800)"
    if size > limit:
        return f"is {size:,} bytes long; one string may be at most {limit:,} bytes"
    return None


_STRING_CHUNK = 1 << 16


def _first_bad_string(values: pd.Series) -> tuple[int, str] | None:
    """Row and problem of the first string in ``values`` that cannot be stored."""
    array = values.to_numpy(dtype=object)
    checked: set[str] = set()  # labels repeat little, channels a lot: check each once
    for start in range(0, len(array), _STRING_CHUNK):  # chunks: a hash table per million rows
        chunk = array[start : start + _STRING_CHUNK]  # cost 2× the edge arrays
        try:
            distinct = pd.unique(chunk)
        except TypeError:  # unhashable values (lists): look at every one
            distinct = chunk
        for value in distinct:
            if not isinstance(value, str) or value in checked:
                continue
            if (problem := string_problem(value)) is not None:
                row = next(i for i, v in enumerate(array) if isinstance(v, str) and v == value)
                return row, problem
            checked.add(value)
    return None


# metadata.extra keys that say where a graph came from, or how its file presented it (a
# Neuronpedia file's viewer state and creator fields), rather than what it is (content_hash).
PROVENANCE_KEYS = frozenset({"source_file", "neuronpedia"})


def check_graph_id(graph_id: str) -> None:
    """Refuse a graph id the store cannot hold: empty, unencodable, or over
    ``MAX_GRAPH_ID_BYTES`` (it is stored on every node). Cheap, so commands check ids they are
    given before doing slow work."""
    if not graph_id or not graph_id.strip():
        raise InvalidGraphError("graph id is empty")
    if len(graph_id.encode("utf-8", "surrogatepass")) > MAX_GRAPH_ID_BYTES:
        raise InvalidGraphError(
            f"graph id {shown(graph_id)} is longer than {MAX_GRAPH_ID_BYTES} bytes "
            "(UTF-8); it is stored on every node"
        )
    if (problem := string_problem(graph_id)) is not None:
        raise InvalidGraphError(f"graph id {shown(graph_id)} {problem}")


class NodeKind(str, Enum):
    """What a node stands for. Attribution graphs use the first four, component graphs the rest."""

    EMBEDDING = "embedding"
    FEATURE = "feature"
    ERROR = "error"
    LOGIT = "logit"
    INPUT = "input"
    ATTENTION_HEAD = "attention_head"
    MLP = "mlp"
    LOGITS = "logits"
    ROI = "roi"  # a region of interest, as a node of an ROI quotient graph
    # Sparse feature circuits (SAEs on the embedding, attention output, MLP output and residual
    # stream of each layer): a feature of one site's SAE, and the site's error term (what the SAE
    # misses). ``pos`` is None when nodes are summed over positions; the embedding has no layer.
    EMBED_FEATURE = "embed_feature"
    ATTN_FEATURE = "attn_feature"
    MLP_FEATURE = "mlp_feature"
    RESID_FEATURE = "resid_feature"
    EMBED_ERROR = "embed_error"
    ATTN_ERROR = "attn_error"
    MLP_ERROR = "mlp_error"
    RESID_ERROR = "resid_error"


SAE_SITES = ("embed", "attn", "mlp", "resid")  # a site's kinds are f"{site}_feature/_error"


KEY_FIELDS = ("kind", "layer", "pos", "feature", "head")

# Which key fields each kind must have (True) or must not have (False); missing kinds are free.
_REQUIRED_FIELDS: dict[NodeKind, dict[str, bool]] = {
    NodeKind.EMBEDDING: {"pos": True, "head": False},
    NodeKind.FEATURE: {"layer": True, "pos": True, "feature": True, "head": False},
    NodeKind.ERROR: {"layer": True, "pos": True, "feature": False, "head": False},
    NodeKind.LOGIT: {"pos": True, "feature": True, "head": False},
    NodeKind.ATTENTION_HEAD: {"layer": True, "head": True, "feature": False},
    NodeKind.MLP: {"layer": True, "feature": False, "head": False},
    NodeKind.INPUT: {"layer": False, "feature": False, "head": False},
    NodeKind.LOGITS: {"layer": False, "feature": False, "head": False},
    NodeKind.ROI: {"feature": True, "head": False},  # feature = the ROI's index in its run
    NodeKind.EMBED_FEATURE: {"layer": False, "feature": True, "head": False},
    NodeKind.EMBED_ERROR: {"layer": False, "feature": False, "head": False},
    **{
        NodeKind(f"{site}_feature"): {"layer": True, "feature": True, "head": False}
        for site in SAE_SITES[1:]
    },
    **{
        NodeKind(f"{site}_error"): {"layer": True, "feature": False, "head": False}
        for site in SAE_SITES[1:]
    },
}
_RULE_COLUMNS = sorted({column for rules in _REQUIRED_FIELDS.values() for column in rules})

# Columns every nodes table has, with the dtype they are normalised to.
NODE_COLUMNS: dict[str, str] = {
    "kind": "object",
    "layer": "Int64",
    "pos": "Int64",
    "feature": "Int64",
    "head": "Int64",
    "activation": "float64",
    "influence": "float64",
    "label": "object",
    "token": "object",
    "token_prob": "float64",
    "is_target_logit": "boolean",
    "source_id": "object",
}
EDGE_COLUMNS: dict[str, str] = {
    "source": "int64",
    "target": "int64",
    "weight": "float64",
    "channel": "object",
}


class NodeKey(NamedTuple):
    """Typed identity of a node within one graph. ``feature`` holds the vocabulary id for logits."""

    kind: str
    layer: int | None = None
    pos: int | None = None
    feature: int | None = None
    head: int | None = None

    def encode(self) -> str:
        """Serialise to the string stored as ``node_key`` in the database.

        Injective by construction (fixed field order, integers only, an empty slot for None), and
        only ever produced from the tuple — never parsed back out of a tool's display id.
        """
        parts = [self.kind] + ["" if v is None else str(int(v)) for v in self[1:]]
        return ":".join(parts)

    @classmethod
    def decode(cls, text: str) -> NodeKey:
        kind, *rest = text.split(":")
        if len(rest) != 4:
            raise InvalidGraphError(f"malformed node key {text!r}")
        return cls(kind, *[None if v == "" else int(v) for v in rest])

    def display_id(self) -> str:
        """A short human-readable id, e.g. ``feature L0 #2 @1`` (derived, never a key)."""
        kind = self.kind
        if kind == NodeKind.FEATURE:
            return f"feature L{self.layer} #{self.feature} @{self.pos}"
        if kind == NodeKind.ERROR:
            return f"error L{self.layer} @{self.pos}"
        if kind == NodeKind.EMBEDDING:
            return f"embedding @{self.pos}"
        if kind == NodeKind.LOGIT:
            return f"logit t{self.feature} @{self.pos}"
        if kind == NodeKind.ATTENTION_HEAD:
            return f"a{self.layer}.h{self.head}" + ("" if self.pos is None else f" @{self.pos}")
        if kind == NodeKind.MLP:
            return f"m{self.layer}" + ("" if self.pos is None else f" @{self.pos}")
        if kind == NodeKind.ROI:
            return f"ROI {self.feature}"
        site, _, part = kind.partition("_")
        if site in SAE_SITES and part in ("feature", "error"):
            where = "" if self.pos is None else f" @{self.pos}"
            name = site if self.layer is None else f"{site}{self.layer}"
            return f"{name} #{self.feature}{where}" if part == "feature" else f"{name} ε{where}"
        return kind if self.pos is None else f"{kind} @{self.pos}"


class GraphMetadata(BaseModel):
    """What a graph is about and where it came from. Unknown keys go into ``extra``."""

    model_config = ConfigDict(extra="forbid")

    graph_id: str = Field(min_length=1)
    model: str | None = None
    prompt: str | None = None
    tokens: list[str] = Field(default_factory=list)
    method: str | None = None
    source_tool: str | None = None
    source_version: str | None = None
    source_format: str | None = None
    transcoder_set: str | None = None
    node_threshold: float | None = None
    edge_threshold: float | None = None
    created_at: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


def _empty_column(dtype: str, n: int) -> pd.Series:
    if dtype == "float64":
        return pd.Series(np.full(n, np.nan), dtype="float64")
    return pd.Series([pd.NA if dtype in ("Int64", "boolean") else None] * n, dtype=dtype)


def _cast_error(table: str, name: str, dtype: str, exc: Exception) -> InvalidGraphError:
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return InvalidGraphError(f"{table} column {name!r} does not fit {dtype} ({first[:200]})")


def normalise_nodes(nodes: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with every standard column present and of its standard dtype."""
    out = nodes.reset_index(drop=True).copy()
    for name, dtype in NODE_COLUMNS.items():
        if name not in out.columns:
            out[name] = _empty_column(dtype, len(out))
            continue
        column = out[name]
        # A column already of its dtype (every column, when an importer's table is checked
        # again by CircuitGraph) is left as it is: casting it anyway cost 6 ms a small graph.
        if dtype == "object":
            if column.dtype != object or column.isna().any():
                out[name] = column.astype(object).where(column.notna(), None)
        elif str(column.dtype) != dtype:
            try:  # e.g. an integer beyond 64 bits, or text in a number column
                out[name] = column.astype(dtype)
            except (TypeError, ValueError, OverflowError) as exc:
                raise _cast_error("node", name, dtype, exc) from None
    out["kind"] = pd.Series(
        [k.value if isinstance(k, NodeKind) else k for k in out["kind"]], dtype=object
    )
    return out


def normalise_edges(edges: pd.DataFrame) -> pd.DataFrame:
    """A new edge table with the typed columns of ``EDGE_COLUMNS`` (``channel`` "" when absent).

    Built column by column, each copied once, rather than copying the whole frame and then
    casting into it: at a million edges that held the input, its copy and the casts at once."""
    for name in EDGE_COLUMNS:
        if name != "channel" and name not in edges.columns:
            raise InvalidGraphError(f"edge table lacks column {name!r}")
    columns: dict[str, Any] = {}
    for name in edges.columns:
        values = edges[name]
        if name == "channel":
            try:
                columns[name] = values.fillna("").astype(str).astype(object)
            except UnicodeEncodeError:  # Arrow-backed strings cannot hold a lone surrogate
                raise InvalidGraphError(
                    "edge column 'channel' holds text that is not valid Unicode"
                ) from None
        elif name in EDGE_COLUMNS:
            dtype = EDGE_COLUMNS[name]
            try:
                columns[name] = values.to_numpy().astype(dtype)
            except (TypeError, ValueError, OverflowError) as exc:
                raise _cast_error("edge", name, dtype, exc) from None
        else:
            columns[name] = values.reset_index(drop=True).copy()
    if "channel" not in columns:  # one shared "" (casting a million of them cost 2× the edges)
        columns["channel"] = np.full(len(edges), "", dtype=object)
    # object Series, not arrays: pandas would infer its string dtype for an object array, at
    # a transient cost of 1.3× the edge arrays, and the channel column is plain str objects
    columns["channel"] = pd.Series(columns["channel"], dtype=object, copy=False).reset_index(
        drop=True
    )
    return pd.DataFrame(columns, copy=False)


@dataclass
class CircuitGraph:
    """Nodes table + edge table + metadata; see the module docstring for the conventions."""

    nodes: pd.DataFrame
    edges: pd.DataFrame
    metadata: GraphMetadata
    _key_index: dict[NodeKey, int] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.nodes = normalise_nodes(self.nodes)
        self.edges = normalise_edges(self.edges)
        self.validate()

    # ------------------------------------------------------------------ identity
    @property
    def graph_id(self) -> str:
        return self.metadata.graph_id

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    def keys(self) -> list[NodeKey]:
        cols = [self.nodes[c].tolist() for c in KEY_FIELDS]
        return [
            NodeKey(kind, *[None if v is pd.NA or v is None else int(v) for v in rest])
            for kind, *rest in zip(*cols)
        ]

    def index_of(self, key: NodeKey) -> int:
        """Row of the node with this identity; a clear error when there is none."""
        if self._key_index is None:
            self._key_index = {k: i for i, k in enumerate(self.keys())}
        try:
            return self._key_index[key]
        except KeyError:
            raise InvalidGraphError(
                f"graph {self.graph_id!r} has no node {key.display_id()} ({key.encode()})"
            ) from None

    # ------------------------------------------------------------------ checks
    def describe_node(self, row: int) -> str:
        """``node 17 (feature L3 #42 @5, id '3_42_5')``: a row named for messages (the id is
        the one the source file gave it, when it gave one)."""
        values = self.nodes.loc[row, list(KEY_FIELDS)].tolist()
        rest = [None if v is None or v is pd.NA else int(v) for v in values[1:]]
        source_id = self.nodes.at[row, "source_id"]
        origin = f", id {shown(source_id)}" if isinstance(source_id, str) else ""
        return f"node {row} ({NodeKey(values[0], *rest).display_id()}{origin})"

    def validate(self) -> None:
        """Reject what would silently corrupt analysis or could not be stored: bad kinds,
        duplicate keys, bad edges, self-loops, infinite values, oversized strings."""
        self._validate_metadata()
        gid = self.metadata.graph_id
        kind_values = self.nodes["kind"].to_numpy()
        present = set(pd.unique(kind_values))
        kinds = present - {k.value for k in NodeKind}
        if kinds:
            raise InvalidGraphError(f"graph {gid!r}: unknown node kind(s) {sorted(kinds)}")
        # One missing-value mask per column and one mask per kind present, as numpy arrays:
        # a DataFrame selection per kind cost 20 ms a graph, most of a small graph's check.
        missing = {column: self.nodes[column].isna().to_numpy() for column in _RULE_COLUMNS}
        for kind, rules in _REQUIRED_FIELDS.items():
            if kind.value not in present:
                continue
            of_kind = kind_values == kind.value
            for column, required in rules.items():
                bad = of_kind & (missing[column] if required else ~missing[column])
                if bad.any():
                    first = self.nodes.index[int(np.flatnonzero(bad)[0])]
                    need = "needs" if required else "must not have"
                    raise InvalidGraphError(
                        f"graph {gid!r}: node row {first} of kind {kind.value!r} {need} {column!r}"
                    )
        for column in KEY_FIELDS[1:]:
            negative = self.nodes[column].to_numpy(dtype=np.float64, na_value=np.nan) < 0
            if negative.any():
                row = int(np.flatnonzero(negative)[0])
                raise InvalidGraphError(
                    f"graph {gid!r}: {self.describe_node(row)}: {column} is "
                    f"{self.nodes.at[row, column]}; layers, positions, features and heads "
                    "count from 0"
                )
        dup = self.nodes.duplicated(subset=list(KEY_FIELDS), keep=False)
        if dup.any():
            first = self.keys()[int(np.flatnonzero(dup.to_numpy())[0])]
            raise InvalidGraphError(f"graph {gid!r}: duplicate node identity {first.display_id()}")
        n = len(self.nodes)
        for end in ("source", "target"):
            values = self.edges[end].to_numpy()
            if len(values) and (values.min() < 0 or values.max() >= n):
                bad_row = int(np.flatnonzero((values < 0) | (values >= n))[0])
                raise InvalidGraphError(
                    f"graph {gid!r}: edge {bad_row} has {end} index {values[bad_row]} "
                    f"outside the {n} nodes"
                )
        sources, targets = self.edges["source"].to_numpy(), self.edges["target"].to_numpy()
        loops = np.flatnonzero(sources == targets)
        if len(loops):
            row = int(loops[0])
            raise InvalidGraphError(
                f"graph {gid!r}: edge {row} is a self-loop on "
                f"{self.describe_node(int(sources[row]))}; no graph format stored here has "
                "self-loops"
            )
        weights = self.edges["weight"].to_numpy()
        if not np.isfinite(weights).all():
            bad_row = int(np.flatnonzero(~np.isfinite(weights))[0])
            raise InvalidGraphError(
                f"graph {gid!r}: edge {bad_row} has non-finite weight {weights[bad_row]}"
            )
        dup_edges = self._duplicate_edges()
        if dup_edges is not None:
            row = self.edges.iloc[dup_edges]
            raise InvalidGraphError(
                f"graph {gid!r}: more than one edge {int(row.source)}->{int(row.target)} "
                f"in channel {row.channel!r}"
            )
        self._validate_values()

    def _duplicate_edges(self) -> int | None:
        """The first edge row whose (source, target, channel) another row repeats, or None.

        One int64 key per edge, sorted, instead of pandas' ``duplicated`` over three columns:
        that built hash tables of 2.3× the edge arrays at a million edges (the peak of an
        ingest)."""
        edges = self.edges
        if not len(edges):
            return None
        channel = edges["channel"]
        several = len(channel) and not (channel == channel.iloc[0]).all()

        def keys() -> np.ndarray:
            key = edges["source"].to_numpy(dtype=np.int64) * max(self.n_nodes, 1)
            key += edges["target"].to_numpy(dtype=np.int64)
            if several:
                codes, uniques = pd.factorize(channel, sort=False)
                key *= len(uniques)
                key += codes
            return key

        ordered = keys()
        ordered.sort()  # in place: the key array is ours
        repeated = ordered[1:][ordered[1:] == ordered[:-1]]
        if not len(repeated):
            return None
        return int(np.flatnonzero(np.isin(keys(), repeated))[0])

    def _validate_metadata(self) -> None:
        meta = self.metadata
        check_graph_id(meta.graph_id)
        gid = meta.graph_id
        for name in _METADATA_STRINGS:
            value = getattr(meta, name)
            if isinstance(value, str) and (problem := string_problem(value)) is not None:
                raise InvalidGraphError(f"graph {gid!r}: metadata {name} {problem}")
        for i, token in enumerate(meta.tokens):
            if (problem := string_problem(token)) is not None:
                raise InvalidGraphError(f"graph {gid!r}: metadata tokens[{i}] {problem}")
        for name in ("node_threshold", "edge_threshold"):
            value = getattr(meta, name)
            if value is not None and not np.isfinite(value):
                raise InvalidGraphError(f"graph {gid!r}: metadata {name} is {value}")
        try:
            size = len(meta.model_dump_json().encode("utf-8"))
        except ValueError as exc:  # pydantic's serialisation error (a lone surrogate in extra)
            first = str(exc).splitlines()[0]
            raise InvalidGraphError(f"graph {gid!r}: metadata cannot be stored ({first})") from None
        if size > MAX_METADATA_BYTES:
            raise InvalidGraphError(
                f"graph {gid!r}: metadata is {size:,} bytes as JSON; at most "
                f"{MAX_METADATA_BYTES:,} (it is stored on the graph's node)"
            )

    def _validate_values(self) -> None:
        """Node and edge property values: finite numbers, probabilities, storable strings."""
        gid = self.metadata.graph_id
        for column in self.nodes.columns:
            values = self.nodes[column]
            if pd.api.types.is_float_dtype(values):
                array = values.to_numpy(dtype=np.float64, na_value=np.nan)
                if np.isinf(array).any():
                    row = int(np.flatnonzero(np.isinf(array))[0])
                    raise InvalidGraphError(
                        f"graph {gid!r}: {self.describe_node(row)}: {column} is {array[row]}"
                    )
            elif values.dtype == object or pd.api.types.is_string_dtype(values):
                found = _first_bad_string(values)
                if found is not None:
                    raise InvalidGraphError(
                        f"graph {gid!r}: {self.describe_node(found[0])}: {column} {found[1]}"
                    )
        prob = self.nodes["token_prob"].to_numpy()
        outside = (prob < 0) | (prob > 1)
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            raise InvalidGraphError(
                f"graph {gid!r}: {self.describe_node(row)}: token_prob is {prob[row]}, "
                "outside [0, 1]"
            )
        for column in self.edges.columns:
            values = self.edges[column]
            if pd.api.types.is_float_dtype(values):
                array = values.to_numpy(dtype=np.float64, na_value=np.nan)
                if np.isinf(array).any():
                    row = int(np.flatnonzero(np.isinf(array))[0])
                    raise InvalidGraphError(f"graph {gid!r}: edge {row}: {column} is {array[row]}")
            elif values.dtype == object or pd.api.types.is_string_dtype(values):
                found = _first_bad_string(values)
                if found is not None:
                    raise InvalidGraphError(f"graph {gid!r}: edge {found[0]}: {column} {found[1]}")

    # ------------------------------------------------------------------ adjacency
    def adjacency(self, channel: str | None = None) -> sp.csr_matrix:
        """``A[target, source]`` (CSR, float64); channels are summed unless one is named."""
        import scipy.sparse as sp

        edges = self.edges if channel is None else self.edges[self.edges["channel"] == channel]
        n = self.n_nodes
        return sp.csr_matrix(
            (edges["weight"].to_numpy(), (edges["target"].to_numpy(), edges["source"].to_numpy())),
            shape=(n, n),
        )

    @classmethod
    def from_scipy(
        cls, adjacency: sp.spmatrix, nodes: pd.DataFrame, metadata: GraphMetadata
    ) -> CircuitGraph:
        """Build from ``A[target, source]``; explicit zeros are dropped."""
        if adjacency.shape != (len(nodes), len(nodes)):
            raise InvalidGraphError(
                f"adjacency shape {adjacency.shape} does not match {len(nodes)} nodes"
            )
        import scipy.sparse as sp

        coo = sp.coo_matrix(adjacency)
        keep = coo.data != 0
        edges = pd.DataFrame(
            {"source": coo.col[keep], "target": coo.row[keep], "weight": coo.data[keep]}
        )
        return cls(nodes, edges, metadata)

    # ------------------------------------------------------------------ tables
    def nodes_frame(self) -> pd.DataFrame:
        """The nodes table with ``node_key`` and ``display_id`` added: the node half of
        :meth:`to_dataframes`, without copying the (possibly million-row) edge table."""
        nodes = self.nodes.copy()
        keys = self.keys()
        nodes["node_key"] = [k.encode() for k in keys]
        nodes["display_id"] = [k.display_id() for k in keys]
        return nodes

    def to_dataframes(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(nodes, edges) with ``node_key``/``display_id`` and endpoint keys added for joins."""
        nodes = self.nodes_frame()
        edges = self.edges.copy()
        node_keys = nodes["node_key"].to_numpy()
        edges["source_key"] = node_keys[edges["source"].to_numpy()]
        edges["target_key"] = node_keys[edges["target"].to_numpy()]
        return nodes, edges

    @classmethod
    def from_dataframes(
        cls, nodes: pd.DataFrame, edges: pd.DataFrame, metadata: GraphMetadata
    ) -> CircuitGraph:
        """Inverse of :meth:`to_dataframes`; endpoints may be row indices or ``*_key`` columns."""
        nodes = nodes.drop(columns=["node_key", "display_id"], errors="ignore")
        edges = edges.copy()
        if "source_key" in edges.columns:
            probe = cls(nodes, pd.DataFrame(columns=list(EDGE_COLUMNS)), metadata)
            lookup = {k.encode(): i for i, k in enumerate(probe.keys())}
            for end in ("source", "target"):
                try:
                    edges[end] = [lookup[k] for k in edges[f"{end}_key"]]
                except KeyError as exc:
                    raise InvalidGraphError(f"edge {end} {exc.args[0]!r} is not a node") from None
            edges = edges.drop(columns=["source_key", "target_key"])
        return cls(nodes, edges, metadata)

    # ------------------------------------------------------------------ networkx
    def to_networkx(self) -> nx.MultiDiGraph:
        """A ``MultiDiGraph`` keyed by :class:`NodeKey`; edge keys are the channels."""
        import networkx as nx

        graph = nx.MultiDiGraph(**self.metadata.model_dump())
        keys = self.keys()
        records = self.nodes.to_dict("records")
        for key, attrs in zip(keys, records):
            graph.add_node(key, **{k: v for k, v in attrs.items() if k not in KEY_FIELDS})
        extra = [c for c in self.edges.columns if c not in ("source", "target", "channel")]
        for row in self.edges.to_dict(orient="records"):
            graph.add_edge(
                keys[row["source"]],
                keys[row["target"]],
                key=row["channel"],
                **{c: row[c] for c in extra},
            )
        return graph

    @classmethod
    def from_networkx(cls, graph: nx.DiGraph | nx.MultiDiGraph) -> CircuitGraph:
        """Inverse of :meth:`to_networkx`; nodes must be :class:`NodeKey` (or 5-tuples)."""
        metadata = GraphMetadata(
            **{k: v for k, v in graph.graph.items() if k in GraphMetadata.model_fields}
        )
        keys = [NodeKey(*k) for k in graph.nodes]
        rows = []
        for key, (_, attrs) in zip(keys, graph.nodes(data=True)):
            rows.append({**attrs, **key._asdict()})
        index = {k: i for i, k in enumerate(keys)}
        edge_rows = []
        if graph.is_multigraph():
            items = ((u, v, k, d) for u, v, k, d in graph.edges(keys=True, data=True))
        else:
            items = ((u, v, "", d) for u, v, d in graph.edges(data=True))
        for u, v, channel, data in items:
            edge_rows.append(
                {
                    "source": index[NodeKey(*u)],
                    "target": index[NodeKey(*v)],
                    "channel": channel,
                    **data,
                }
            )
        edges = pd.DataFrame(edge_rows, columns=None if edge_rows else list(EDGE_COLUMNS))
        return cls(pd.DataFrame(rows), edges, metadata)

    # ------------------------------------------------------------------ content
    def content_hash(self, *, with_provenance: bool = False) -> str:
        """SHA-256 of nodes, edges and metadata, independent of row order.

        The store uses it to make re-ingest idempotent: the same content under the same id is a
        no-op, whatever order the importer produced rows in. Rows are put in a canonical order
        by node key (edges by their endpoints' key ranks), then hashed column by column.
        Where a graph was read from (``PROVENANCE_KEYS`` in ``metadata.extra``, e.g. the file
        name) is not what it is, so it is left out: the same graph ingested from a renamed or
        compressed copy is the same graph. ``with_provenance=True`` gives the hash versions
        before 0.1 (issue 13) recorded, so graphs they stored still compare equal.
        """
        keys = np.array([k.encode() for k in self.keys()], dtype=object)
        order = np.argsort(keys, kind="stable")
        rank = np.empty(len(keys), dtype=np.int64)
        rank[order] = np.arange(len(keys))
        nodes = self.nodes.iloc[order].reset_index(drop=True)
        nodes["node_key"] = keys[order]
        edges = self.edges
        src_rank = rank[edges["source"].to_numpy()]
        dst_rank = rank[edges["target"].to_numpy()]
        channel_rank = pd.factorize(edges["channel"], sort=True)[0]
        edge_order = np.lexsort((channel_rank, dst_rank, src_rank))
        edges = edges.drop(columns=["source", "target"]).iloc[edge_order].reset_index(drop=True)
        edges["source_rank"] = src_rank[edge_order]
        edges["target_rank"] = dst_rank[edge_order]
        digest = hashlib.sha256()
        # Versions before 0.1 hashed every extra key they wrote; "neuronpedia" came later.
        left_out = {"neuronpedia"} if with_provenance else PROVENANCE_KEYS
        extra = {k: v for k, v in self.metadata.extra.items() if k not in left_out}
        metadata = self.metadata.model_copy(update={"extra": extra})
        digest.update(metadata.model_dump_json().encode())
        for table in (nodes, edges):
            for column in sorted(table.columns):
                values = table[column]
                if values.dtype == object or not pd.api.types.is_numeric_dtype(values):
                    values = values.astype(str)
                digest.update(column.encode())
                digest.update(pd.util.hash_pandas_object(values, index=False).values.tobytes())
        return digest.hexdigest()

    def summary(self) -> dict[str, Any]:
        kinds = self.nodes["kind"].value_counts().to_dict()
        return {"graph_id": self.graph_id, "nodes": self.n_nodes, "edges": self.n_edges, **kinds}


def _unencodable_record(records: list[Mapping[str, Any]]) -> str:
    for i, record in enumerate(records):
        for name, value in record.items():
            if isinstance(value, str) and (problem := string_problem(value)) is not None:
                return f"node {i}: {name} {problem}"
    return "a node's text is not valid Unicode"


def nodes_from_records(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Build a normalised nodes table from dicts (importers' convenience)."""
    rows = list(records)
    try:
        frame = pd.DataFrame(rows)
    except UnicodeEncodeError:  # pandas' Arrow-backed strings cannot hold a lone surrogate
        raise InvalidGraphError(_unencodable_record(rows)) from None
    for name, dtype in NODE_COLUMNS.items():
        # Straight from the Python ints: a column with gaps would otherwise pass through
        # float64, which rounds integers beyond 2**53 (and wraps those beyond 2**63).
        if dtype == "Int64" and name in frame.columns:
            try:
                frame[name] = pd.array([row.get(name) for row in rows], dtype=dtype)
            except (TypeError, ValueError, OverflowError) as exc:
                raise _cast_error("node", name, dtype, exc) from None
    return normalise_nodes(frame)
