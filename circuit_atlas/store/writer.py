"""The two ways a graph's nodes and edges reach the database.

Both run after the store has claimed the graph id (its ``:Graph`` node exists, ``'loading'``,
see ``claims.py``) and merged the graph's shared ``:Feature`` nodes; the store flips the status
to ``'ready'`` after them.

* :func:`write_over_bolt` — batched ``UNWIND … CREATE`` statements, each committed in its own
  transaction after checking that the graph's claim is still this writer's (readers see nothing
  until the status turns ``'ready'``; a writer that dies midway leaves a ``'loading'`` graph that
  the next store open removes). Edges and feature links find their nodes by the element ids
  that creating the nodes returned: one plan on every server (a lookup by ``node_key`` was
  sometimes planned by Neo4j as a scan of the graph per row). Used for Neo4j and any remote
  server.
* :func:`write_bulk_embedded` — the engine's ``GraphBatch`` API, available when this process
  hosts the local ArcadeDB server. It commits in chunks, so atomicity comes from the
  ``status`` flag instead: every read filters on ``'ready'``, and an interrupted load is removed
  the next time the server starts (``CircuitStore.remove_interrupted_loads``).

Both store the same properties (:mod:`.rows`). ``benchmarks/ingest.py`` measures them against
the naive per-batch ``MERGE`` path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from circuit_atlas.graph import CircuitGraph
from circuit_atlas.store import schema
from circuit_atlas.store.bulk_json import buffer_edges, create_vertices
from circuit_atlas.store.rows import (
    edge_property_rows,
    feature_identity,
    feature_rows,
    node_property_rows,
)

BOLT_BATCH = 20_000

Run = Callable[[str, dict[str, Any]], Any]


def _batches(rows: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


# A Bolt server drops a message over 16 MiB (ArcadeDB) and the client then waits for ever, so a
# batch is cut at half that, estimated; one row is at most a few MiB (CircuitGraph.validate
# bounds every string at 1 MiB).
MAX_MESSAGE_BYTES = 8 << 20
ROW_OVERHEAD_BYTES = 64  # keys, markers and numbers of a row are small next to its strings


def approx_bytes(row: dict[str, Any]) -> int:
    """An upper-bound-ish estimate of a property map's PackStream size: strings by length
    (UTF-8 at most 4 bytes a character), numbers and list items 9 bytes, keys by length."""
    total = ROW_OVERHEAD_BYTES
    for key, value in row.items():
        total += len(key) + 9
        if isinstance(value, str):
            total += len(value) if value.isascii() else 4 * len(value)
        elif isinstance(value, (list, tuple)):
            total += 9 * len(value) + sum(len(v) for v in value if isinstance(v, str))
    return total


def sized_batches(
    rows: Sequence[dict[str, Any]], max_rows: int = BOLT_BATCH, max_bytes: int = MAX_MESSAGE_BYTES
) -> Iterator[list[dict[str, Any]]]:
    """Consecutive batches of at most ``max_rows`` rows and (estimated) ``max_bytes`` bytes."""
    batch: list[dict[str, Any]] = []
    used = 0
    for row in rows:
        size = approx_bytes(row)
        if batch and (len(batch) >= max_rows or used + size > max_bytes):
            yield batch
            batch, used = [], 0
        batch.append(row)
        used += size
    if batch:
        yield batch


def edge_batch_bounds(graph: CircuitGraph, max_rows: int = BOLT_BATCH) -> list[int]:
    """Start offsets of edge batches: every ``max_rows`` edges, and earlier where the edges'
    string columns (channels and extras) would push a batch past ``MAX_MESSAGE_BYTES``."""
    edges = graph.edges
    per_row = np.full(len(edges), ROW_OVERHEAD_BYTES * 2, dtype=np.int64)
    for column in edges.columns:
        if edges[column].dtype == object or str(edges[column].dtype).startswith("str"):
            lengths = edges[column].map(lambda v: len(v) * 4 if isinstance(v, str) else 9)
            per_row += lengths.to_numpy(dtype=np.int64)
    starts = [0]
    used = 0
    for i, size in enumerate(per_row.tolist()) if per_row.max(initial=0) > 4096 else ():
        if i > starts[-1] and (i - starts[-1] >= max_rows or used + size > MAX_MESSAGE_BYTES):
            starts.append(i)
            used = 0
        used += size
    if per_row.max(initial=0) <= 4096:  # small rows: count alone decides (no Python loop)
        starts = list(range(0, len(edges), max_rows)) or [0]
    return starts


MERGE_FEATURES = (
    "UNWIND $rows AS r "
    "MERGE (f:Feature {model: r.model, transcoder_set: r.transcoder_set, layer: r.layer, "
    "feature: r.feature})"
)


CREATE_NODES = (
    "MATCH (g:Graph {graph_id: $gid}) UNWIND $rows AS r "
    "CREATE (n:Node)-[:IN_GRAPH]->(g) SET n = r "
    "RETURN r.node_key AS key, elementId(n) AS id"
)
LINK_FEATURES = (
    "UNWIND $rows AS r MATCH (n:Node) WHERE elementId(n) = r.id "
    "MATCH (f:Feature {model: r.model, transcoder_set: r.transcoder_set, "
    "layer: r.layer, feature: r.feature}) CREATE (n)-[:INSTANCE_OF]->(f)"
)
CREATE_EDGES = (
    "UNWIND $rows AS r MATCH (a:Node) WHERE elementId(a) = r.s "
    "MATCH (b:Node) WHERE elementId(b) = r.t "
    "CREATE (a)-[e:EDGE]->(b) SET e = r.p"
)


def write_over_bolt(
    run: Run, graph: CircuitGraph, features: list[dict[str, Any]], progress: bool = False
) -> None:
    """Write nodes, feature links and edges with ``run`` (a statement runner bound to one open
    transaction) under the already claimed ``:Graph``; ``features``: its ``feature_rows``."""
    gid = graph.graph_id
    nodes = node_property_rows(graph)
    node_id: dict[str, str] = {}
    edges = edge_property_rows(graph)
    src = graph.edges["source"].to_numpy()
    dst = graph.edges["target"].to_numpy()
    total = len(nodes) + len(edges) + len(features)
    with tqdm(
        total=total, desc=f"write {gid}", unit="row", disable=not progress, leave=False
    ) as bar:
        for batch in sized_batches(nodes):
            created = run(CREATE_NODES, {"gid": gid, "rows": batch})
            node_id.update((row["key"], row["id"]) for row in created)
            bar.update(len(batch))
        for batch in _batches(features, BOLT_BATCH):
            run(
                LINK_FEATURES,
                {"rows": [{**row, "id": node_id[row["node_key"]]} for row in batch]},
            )
            bar.update(len(batch))
        ids = [node_id[row["node_key"]] for row in nodes]
        starts = edge_batch_bounds(graph)
        for start, stop in zip(starts, [*starts[1:], len(edges)]):
            if start >= stop:
                continue
            rows = [{"s": ids[src[i]], "t": ids[dst[i]], "p": edges[i]} for i in range(start, stop)]
            run(CREATE_EDGES, {"rows": rows})
            bar.update(stop - start)


def _rows(database: Any, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Query rows as dicts, serialised in bulk by the engine (a per-row crossing costs ~80 µs:
    1.6 s for the 20k features of one model)."""
    result = database.query("sql", sql, *args)
    if hasattr(result, "to_json_list"):
        return [dict(row) for row in result.to_json_list()]
    return [dict(row.to_dict()) for row in result]


def write_bulk_embedded(
    database: Any,
    graphs: Sequence[CircuitGraph],
    progress: bool = False,
    advance: Callable[[int], Any] | None = None,
) -> None:
    """Bulk-load the nodes and edges of ``graphs``, each under its claimed ``:Graph``, through
    the in-process engine, in one ``GraphBatch`` (what makes a corpus of small graphs fast: the
    batch's fixed costs are paid once); ``advance(rows)`` hears of progress too (the shared
    server's bulk channel relays it). Every graph's :Feature identities must exist."""
    for vertex_type in (schema.GRAPH, schema.NODE, schema.FEATURE):
        database.command("sql", f"CREATE VERTEX TYPE {vertex_type} IF NOT EXISTS")
    for edge_type in (schema.EDGE, schema.IN_GRAPH, schema.INSTANCE_OF):
        database.command("sql", f"CREATE EDGE TYPE {edge_type} IF NOT EXISTS")
    ids = [graph.graph_id for graph in graphs]
    claimed = {  # one query for the batch: every graph being written is 'loading'
        str(row["graph_id"]): str(row["rid"])
        for row in _rows(
            database, "SELECT @rid AS rid, graph_id FROM Graph WHERE status = ?", schema.LOADING
        )
    }
    graph_rid = {gid: claimed[gid] for gid in ids}
    features = {graph.graph_id: feature_rows(graph) for graph in graphs}
    feature_rid: dict[tuple[str, str, int, int], str] = {}
    for model, transcoder_set in {feature_identity(g) for g in graphs if features[g.graph_id]}:
        for row in _rows(
            database,
            "SELECT @rid AS rid, layer, feature FROM Feature "
            "WHERE model = ? AND transcoder_set = ?",
            model,
            transcoder_set,
        ):
            key = (model, transcoder_set, int(row["layer"]), int(row["feature"]))
            feature_rid[key] = str(row["rid"])
    total = sum(graph.n_nodes + graph.n_edges for graph in graphs)
    label = ids[0] if len(ids) == 1 else f"{len(ids)} graphs"
    with (
        tqdm(
            total=total, desc=f"bulk {label}", unit="row", disable=not progress, leave=False
        ) as bar,
        database.graph_batch() as batch,
    ):

        def step(rows: int) -> None:
            bar.update(rows)
            if advance is not None:
                advance(rows)

        for graph in graphs:
            _buffer_graph(
                batch, graph, graph_rid[graph.graph_id], features[graph.graph_id], feature_rid, step
            )


def _buffer_graph(
    batch: Any,
    graph: CircuitGraph,
    graph_rid: str,
    features: list[dict[str, Any]],
    feature_rid: dict[tuple[str, str, int, int], str],
    step: Callable[[int], None],
) -> None:
    """Buffer one graph's nodes, their links to the graph and features, and its edges."""
    nodes = node_property_rows(graph)
    node_rids = np.array(create_vertices(batch, schema.NODE, nodes), dtype=object)
    step(len(nodes))
    batch.new_edges(node_rids.tolist(), schema.IN_GRAPH, [graph_rid] * len(nodes))
    if features:
        index_of = {row["node_key"]: i for i, row in enumerate(nodes)}
        batch.new_edges(
            [node_rids[index_of[f["node_key"]]] for f in features],
            schema.INSTANCE_OF,
            [
                feature_rid[(f["model"], f["transcoder_set"], f["layer"], f["feature"])]
                for f in features
            ],
        )
    src = node_rids[graph.edges["source"].to_numpy()].tolist()
    dst = node_rids[graph.edges["target"].to_numpy()].tolist()
    buffer_edges(batch, schema.EDGE, src, dst, graph, step)
