"""``CircuitStore``: circuit graphs in a Bolt graph database (Neo4j 5 Cypher), one code path.

Open it with :meth:`CircuitStore.open`: with a URI it connects to that server (Neo4j in
production); without one it uses the zero-setup local server — a shared one started by
``circuit-atlas db start`` if it is running, otherwise one hosted by this process for as long as
the store is open.

Idempotence: writing a graph whose id and content (``CircuitGraph.content_hash``) are already
stored is a no-op (``"unchanged"``); the same id with other content is refused unless
``replace=True`` (``"replaced"``). Nothing is ever duplicated.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import socket
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from neo4j import READ_ACCESS, WRITE_ACCESS, Driver, GraphDatabase

from circuit_atlas.errors import (
    ArtifactUnavailable,
    ConnectionFailed,
    CypherError,
    GraphConflict,
    GraphNotFound,
    QueryTimeout,
)
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.local_server import LocalServer, running_shared_server

from . import schema, write_back
from .abandon import stop_on_server
from .artifact import read_artifact, write_artifact
from .cypher_guard import assert_read_only
from .deadline import call_with_deadline
from .errors_map import translated
from .rows import (
    graph_from_rows,
    graph_properties,
    metadata_from_properties,
    path_bound_properties,
)
from .settings import ConnectionSettings
from .writer import write_bulk_embedded, write_over_bolt

__all__ = ["CircuitStore", "ConnectionSettings", "WriteResult"]

DELETE_BATCH = 5_000

# Stores still open when the interpreter exits. A neo4j driver still open when JPype shuts the
# embedded JVM down crashes it (SIGSEGV in a Python callback, then a hang), so every store is
# closed at exit even when the caller forgot to — e.g. after an exception. The hook is moved to
# the end of the atexit queue each time a store opens, so it runs before JPype's own hook.
_OPEN_STORES: weakref.WeakSet[CircuitStore] = weakref.WeakSet()


def _close_open_stores() -> None:
    for store in list(_OPEN_STORES):
        store.close()


@dataclass(frozen=True)
class WriteResult:
    graph_id: str
    status: str  # "created" | "unchanged" | "replaced"
    n_nodes: int
    n_edges: int
    seconds: float
    path: str  # "bulk" (embedded engine) or "bolt"


class CircuitStore:
    def __init__(
        self,
        driver: Driver,
        database: str,
        artifact_dir: Path,
        uri: str,
        user: str | None,
        local_server: LocalServer | None = None,
        owns_server: bool = False,
    ) -> None:
        self.driver = driver
        self.database = database
        self.artifact_dir = artifact_dir
        self.uri = uri
        self.user = user
        self.local_server = local_server
        self._owns_server = owns_server
        _OPEN_STORES.add(self)
        atexit.unregister(_close_open_stores)
        atexit.register(_close_open_stores)

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, settings: ConnectionSettings | None = None, **overrides: Any) -> CircuitStore:
        settings = settings or ConnectionSettings.resolve(**overrides)
        server: LocalServer | None = None
        owns = False
        if settings.uses_local_server:
            assert settings.data_dir is not None
            endpoint = running_shared_server(settings.data_dir)
            if endpoint is None:
                active = LocalServer._active
                if active is not None and active.data_dir == settings.data_dir:
                    server = active
                else:
                    server = LocalServer(settings.data_dir, settings.database_name)
                    server.start()
                    owns = True
                endpoint = server.endpoint
            uri, user, password = endpoint.uri, endpoint.user, endpoint.password
            database = settings.database or endpoint.database
        else:
            uri, user, password = settings.uri, settings.user or "neo4j", settings.password
            database = settings.database_name
        driver = GraphDatabase.driver(uri, auth=(user, password or ""), connection_timeout=10)
        store = cls(driver, database, settings.artifacts, uri, user, server, owns)
        try:
            with translated(uri, user):
                driver.verify_connectivity()
                store.ensure_schema()
            if owns:
                store.remove_interrupted_loads()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        _OPEN_STORES.discard(self)
        with contextlib.suppress(Exception):
            self.driver.close()
        if self._owns_server and self.local_server is not None:
            self.local_server.stop()
            self._owns_server = False

    def __enter__(self) -> CircuitStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def _session(self, write: bool) -> Iterator[Any]:
        with (
            translated(self.uri, self.user),
            self.driver.session(
                database=self.database, default_access_mode=WRITE_ACCESS if write else READ_ACCESS
            ) as session,
        ):
            yield session

    def _write(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one internal write in its own transaction, retried on transient conflicts."""
        with self._session(write=True) as session:
            return session.execute_write(
                lambda tx: [r.data() for r in tx.run(cypher, params or {})]
            )

    def _read(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        with self._session(write=False) as session:
            return session.execute_read(lambda tx: [r.data() for r in tx.run(cypher, params or {})])

    def ensure_schema(self) -> None:
        for statement in schema.SCHEMA_STATEMENTS:
            self._write(statement)

    @property
    def has_bulk_path(self) -> bool:
        server = self.local_server
        return server is not None and server.running and server.endpoint.uri == self.uri

    # ------------------------------------------------------------------ writing
    def _graph_record(self, graph_id: str) -> dict[str, Any] | None:
        rows = self._read(
            "MATCH (g:Graph {graph_id: $gid}) RETURN properties(g) AS g", {"gid": graph_id}
        )
        return rows[0]["g"] if rows else None

    def write_graph(
        self,
        graph: CircuitGraph,
        replace: bool = False,
        progress: bool = False,
        force_bolt: bool = False,
    ) -> WriteResult:
        started = time.perf_counter()
        gid = graph.graph_id
        content_hash = graph.content_hash()
        existing = self._graph_record(gid)
        status = "created"
        if existing is not None:
            if existing.get("status") == schema.READY:
                if existing.get("content_hash") == content_hash:
                    if not Path(existing.get("artifact_path", "")).exists():
                        write_artifact(graph, self.artifact_dir, content_hash)
                    if self._lacks_path_bounds(gid):  # stored by an older version
                        self._set_path_bounds(gid, graph)
                    return WriteResult(
                        gid,
                        "unchanged",
                        graph.n_nodes,
                        graph.n_edges,
                        time.perf_counter() - started,
                        "none",
                    )
                if not replace:
                    raise GraphConflict(
                        f"graph {gid!r} already exists with different content; pass --replace "
                        "to overwrite it or --graph-id to store it under another id"
                    )
                status = "replaced"
            self._delete_graph_data(gid)
        artifact, artifact_sha = write_artifact(graph, self.artifact_dir, content_hash)
        props = graph_properties(
            graph,
            status=schema.READY,
            content_hash=content_hash,
            artifact_path=str(artifact),
            artifact_sha256=artifact_sha,
            ingested_at=time.time(),
            writer=f"{socket.gethostname()}:{os.getpid()}",
        )
        use_bulk = self.has_bulk_path and not force_bolt
        try:
            if use_bulk:
                assert self.local_server is not None
                database = self.local_server.embedded_database(self.database)
                write_bulk_embedded(self._write_retrying, database, graph, props, progress)
            else:
                with self._session(write=True) as session, session.begin_transaction() as tx:
                    write_over_bolt(lambda q, p: tx.run(q, p).consume(), graph, props, progress)
                    tx.commit()
        except BaseException:
            with contextlib.suppress(Exception):
                self._delete_graph_data(gid)
            with contextlib.suppress(OSError):
                artifact.unlink()
            raise
        return WriteResult(
            gid,
            status,
            graph.n_nodes,
            graph.n_edges,
            time.perf_counter() - started,
            "bulk" if use_bulk else "bolt",
        )

    def _write_retrying(self, cypher: str, params: dict[str, Any]) -> None:
        self._write(cypher, params)

    # ------------------------------------------------------------------ deleting
    def _delete_graph_data(self, graph_id: str) -> None:
        """Delete a graph's nodes in batches (whole-graph DETACH DELETE is slow on ArcadeDB)."""
        while True:
            rows = self._write(
                "MATCH (n:Node {graph_id: $gid}) WITH n LIMIT $limit DETACH DELETE n "
                "RETURN count(*) AS deleted",
                {"gid": graph_id, "limit": DELETE_BATCH},
            )
            if not rows or rows[0]["deleted"] == 0:
                break
        self._write(write_back.DELETE_SUBGRAPHS, {"gid": graph_id})
        self._write(write_back.DELETE_ROIS_OF_GRAPH, {"gid": graph_id})
        self._write("MATCH (g:Graph {graph_id: $gid}) DETACH DELETE g", {"gid": graph_id})

    def delete_graph(self, graph_id: str) -> None:
        record = self._graph_record(graph_id)
        if record is None:
            raise GraphNotFound(f"no graph {graph_id!r} in the store")
        self._delete_graph_data(graph_id)
        path = record.get("artifact_path")
        if path:
            with contextlib.suppress(OSError):
                Path(path).unlink()

    def remove_interrupted_loads(self) -> list[str]:
        """Delete graphs left ``'loading'`` by a process that died mid-write (bulk path only)."""
        rows = self._read(
            "MATCH (g:Graph) WHERE g.status <> $ready RETURN g.graph_id AS gid",
            {"ready": schema.READY},
        )
        for row in rows:
            self._delete_graph_data(row["gid"])
        return [row["gid"] for row in rows]

    # ------------------------------------------------------------------ analysis results
    def write_scores(
        self,
        graph_id: str,
        graph_props: dict[str, Any],
        node_rows: list[dict[str, Any]],
        subgraphs: list[dict[str, Any]],
    ) -> None:
        """Write a graph's scores, node annotations and pinned subgraphs in one transaction."""
        self.graph_info(graph_id)
        self._in_write_transaction(
            write_back.write_scores, graph_id, graph_props, node_rows, subgraphs
        )

    def write_rois(
        self,
        run_id: str,
        roi_rows: list[dict[str, Any]],
        members: list[dict[str, Any]],
        member_kind: str,
        scope: dict[str, Any],
    ) -> None:
        """Replace one ROI run — ROIs, memberships, quotient links — in one transaction."""
        self._in_write_transaction(
            write_back.write_rois, run_id, roi_rows, members, member_kind, scope
        )

    def graphs_without_path_bounds(self) -> list[str]:
        """Graphs written by a Circuit Atlas older than the stored path bounds (see
        ``circuit_atlas/path_bounds.py``): path queries on them are exact but unpruned."""
        rows = self._read(
            "MATCH (n:Node) WHERE n.prefix_bound IS NULL WITH DISTINCT n.graph_id AS gid "
            "MATCH (g:Graph {graph_id: gid, status: $ready}) RETURN gid ORDER BY gid",
            {"ready": schema.READY},
        )
        return [row["gid"] for row in rows]

    def add_path_bounds(self, graph_id: str) -> int:
        """Compute a stored graph's path bounds from its exact artifact (or, when that is
        unreadable, from the database copy) and set them on its nodes, in one transaction;
        returns the number of nodes."""
        try:
            graph = self.read_artifact(graph_id)
        except ArtifactUnavailable:
            graph = self.read_graph(graph_id)
        return self._set_path_bounds(graph_id, graph)

    def _lacks_path_bounds(self, graph_id: str) -> bool:
        rows = self._read(
            "MATCH (n:Node {graph_id: $gid}) WHERE n.prefix_bound IS NULL "
            "RETURN n.node_key AS key LIMIT 1",
            {"gid": graph_id},
        )
        return bool(rows)

    def _set_path_bounds(self, graph_id: str, graph: CircuitGraph) -> int:
        rows = [
            {"node_key": key.encode(), "props": props}
            for key, props in zip(graph.keys(), path_bound_properties(graph))
        ]
        self._in_write_transaction(
            lambda run: run(write_back.SET_NODE_PROPERTIES, {"gid": graph_id, "rows": rows})
        )
        return len(rows)

    def _in_write_transaction(self, writer: Callable[..., None], *args: Any) -> None:
        """Run ``writer(run, *args)`` in one retried write transaction (``run(q, p)`` → rows)."""

        def work(tx: Any) -> None:
            writer(lambda q, p: [r.data() for r in tx.run(q, p)], *args)

        with self._session(write=True) as session:
            session.execute_write(work)

    def subgraphs(self, graph_id: str) -> list[dict[str, Any]]:
        """Stored pinned subgraphs of a graph, with their member node keys."""
        return self._read(
            "MATCH (s:Subgraph {graph_id: $gid}) "
            "OPTIONAL MATCH (n:Node)-[:PINNED_IN]->(s) "
            "WITH s, n ORDER BY n.node_key "
            "RETURN s.subgraph_id AS subgraph_id, properties(s) AS props, "
            "collect(n.node_key) AS members ORDER BY subgraph_id",
            {"gid": graph_id},
        )

    def write_derived(
        self, child: CircuitGraph, links: dict[str, dict[str, Any]], replace: bool = False
    ) -> WriteResult:
        """Write a graph computed from stored ones and link it ``DERIVED_FROM`` each parent
        (``links``: parent id → link properties). If a link fails, a child this call created is
        deleted again: an unlinked child would look like an ordinary graph."""
        result = self.write_graph(child, replace=replace)
        try:
            for parent, props in links.items():
                self.link_derived(child.graph_id, parent, props)
        except Exception:
            if result.status == "created":
                self.delete_graph(child.graph_id)
            raise
        return result

    def link_derived(self, child: str, parent: str, props: dict[str, Any]) -> None:
        """``(child:Graph)-[:DERIVED_FROM props]->(parent:Graph)``, idempotently."""
        rows = self._write(
            write_back.LINK_DERIVED, {"child": child, "parent": parent, "props": props}
        )
        if not rows or rows[0]["n"] == 0:
            raise GraphNotFound(f"cannot link {child!r} to {parent!r}: one of them is not stored")

    # ------------------------------------------------------------------ reading
    def graph_info(self, graph_id: str) -> dict[str, Any]:
        record = self._graph_record(graph_id)
        if record is None or record.get("status") != schema.READY:
            raise GraphNotFound(f"no graph {graph_id!r} in the store (see `circuit-atlas graphs`)")
        return record

    def read_graph(self, graph_id: str) -> CircuitGraph:
        """The graph as stored in the database (every node, edge and property)."""
        metadata = metadata_from_properties(self.graph_info(graph_id))
        nodes = self._read(
            "MATCH (n:Node {graph_id: $gid}) RETURN properties(n) AS p", {"gid": graph_id}
        )
        edges = self._read(
            "MATCH (a:Node {graph_id: $gid})-[e:EDGE]->(b:Node) "
            "RETURN a.node_key AS source_key, b.node_key AS target_key, properties(e) AS props",
            {"gid": graph_id},
        )
        return graph_from_rows(metadata, [r["p"] for r in nodes], edges)

    def read_artifact(self, graph_id: str) -> CircuitGraph:
        """The exact, unpruned graph from its artifact (checked against the recorded hash)."""
        info = self.graph_info(graph_id)
        return read_artifact(Path(info["artifact_path"]), info.get("artifact_sha256"))

    def list_graphs(
        self,
        model: str | None = None,
        method: str | None = None,
        source_format: str | None = None,
        contains: str | None = None,
    ) -> pd.DataFrame:
        rows = self._read(
            "MATCH (g:Graph) WHERE g.status = $ready "
            "AND ($model IS NULL OR g.model = $model) "
            "AND ($method IS NULL OR g.method = $method) "
            "AND ($fmt IS NULL OR g.source_format STARTS WITH $fmt) "
            "AND ($contains IS NULL OR g.graph_id CONTAINS $contains) "
            "RETURN g.graph_id AS graph_id, g.model AS model, g.method AS method, "
            "g.source_format AS source_format, g.n_nodes AS nodes, g.n_edges AS edges, "
            "g.prompt AS prompt ORDER BY graph_id",
            {
                "ready": schema.READY,
                "model": model,
                "method": method,
                "fmt": source_format,
                "contains": contains,
            },
        )
        columns = ["graph_id", "model", "method", "source_format", "nodes", "edges", "prompt"]
        return pd.DataFrame(rows, columns=columns)

    def count_graph(self, graph_id: str) -> tuple[int, int]:
        """(nodes, edges) of one graph as counted in the database, not as recorded."""
        nodes = self._read(
            "MATCH (n:Node {graph_id: $gid}) RETURN count(n) AS c", {"gid": graph_id}
        )[0]["c"]
        edges = self._read(
            "MATCH (a:Node {graph_id: $gid})-[e:EDGE]->() RETURN count(e) AS c", {"gid": graph_id}
        )[0]["c"]
        return nodes, edges

    # ------------------------------------------------------------------ user Cypher
    def query(
        self,
        cypher: str,
        params: dict[str, Any] | None = None,
        *,
        write: bool = False,
        timeout_s: float | None = 60.0,
    ) -> list[dict[str, Any]]:
        """Run user Cypher with parameters. Read-only unless ``write=True``.

        Read-only is enforced three ways: a clause check before sending, a READ-mode session,
        and a transaction that is rolled back rather than committed.

        ``timeout_s`` bounds the whole round trip on every server: it is sent as the
        transaction timeout (Neo4j stops the query there) and the caller also stops waiting
        then (ArcadeDB ignores the transaction timeout), asks the server to terminate the query
        (``store/abandon.py``) and raises ``QueryTimeout``. Where the server cannot terminate
        it, the abandoned query runs on to its end in the background; its rows are dropped and
        it never commits (``store/deadline.py``). ``None`` waits for ever.
        """
        if not cypher or not cypher.strip():
            raise CypherError("empty query")
        if timeout_s is not None and not timeout_s > 0:
            raise CypherError(f"timeout must be a positive number of seconds, got {timeout_s}")
        if not write:
            assert_read_only(cypher)

        def work(claim: Callable[[], bool]) -> list[dict[str, Any]]:
            with self._session(write=write) as session:
                tx = session.begin_transaction(timeout=timeout_s)
                try:
                    rows = [record.data() for record in tx.run(cypher, params or {})]
                    if write and claim():
                        tx.commit()
                finally:
                    if tx.closed() is False:
                        tx.rollback()
            return rows

        def give_up() -> QueryTimeout:
            stopped = self._terminate_on_server(cypher)
            return QueryTimeout(
                f"query exceeded the {timeout_s:g} s time limit and was "
                f"{'stopped' if stopped else 'abandoned'}; raise the limit with --timeout SECONDS "
                "(timeout_s= in Python) or narrow the query"
            )

        try:
            return call_with_deadline(work, timeout_s, give_up)
        except KeyboardInterrupt:  # Ctrl-C: do not leave the query running on a shared server
            self._terminate_on_server(cypher)
            raise
        except ConnectionFailed:
            if not self._answers():
                raise
            # ArcadeDB drops the Bolt connection of a query that exhausts its heap, and stays up
            raise CypherError(
                f"the graph database at {self.uri} dropped the connection while running the "
                "query but still answers: the query most likely ran out of server memory; "
                "narrow it (a smaller k, max_length or hops) or give the server more memory "
                "(for the zero-setup server: ARCADEDB_JVM_ARGS=-Xmx8g)"
            ) from None

    def _answers(self) -> bool:
        """Whether the server accepts a new connection now (after one broke)."""
        try:
            self.driver.verify_connectivity()
        except Exception:
            return False
        return True

    def _terminate_on_server(self, cypher: str) -> bool:
        """Best effort: stop an abandoned query on the server (see ``store/abandon.py``)."""

        def run(statement: str, params: dict[str, Any]) -> list[dict[str, Any]]:
            with self._session(write=True) as session:
                return [record.data() for record in session.run(statement, params)]

        return stop_on_server(run, cypher, self.user)

    def query_df(
        self, cypher: str, params: dict[str, Any] | None = None, **kwargs: Any
    ) -> pd.DataFrame:
        return pd.DataFrame(self.query(cypher, params, **kwargs))


def open_store(**overrides: Any) -> CircuitStore:
    """Shorthand for ``CircuitStore.open(ConnectionSettings.resolve(**overrides))``."""
    return CircuitStore.open(ConnectionSettings.resolve(**overrides))
