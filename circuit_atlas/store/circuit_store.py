"""``CircuitStore``: circuit graphs in a Bolt graph database (Neo4j 5 Cypher), one code path.

Open it with :meth:`CircuitStore.open`: with a URI it connects to that server (Neo4j in
production); without one it uses the zero-setup local server — a shared one started by
``circuit-atlas db start`` if it is running, otherwise one hosted by this process for as long as
the store is open.

Idempotence: writing a graph whose id and content (``CircuitGraph.content_hash``) are already
stored is a no-op (``"unchanged"``); the same id with other content is refused unless
``replace=True`` (``"replaced"``). Nothing is ever duplicated.

Concurrency: every write and delete first claims the graph id (``claims.py``), so two processes
writing the same id never delete each other's graph, and a reader sees a graph whole or not at
all. User Cypher is read-only unless asked, enforced by the server (``docs/security.md``).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import random
import time
import weakref
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neo4j import READ_ACCESS, WRITE_ACCESS, Driver, GraphDatabase

from circuit_atlas.errors import (
    ArtifactUnavailable,
    ConnectionFailed,
    CypherError,
    DuplicateKey,
    GraphBusy,
    GraphConflict,
    GraphNotFound,
    QueryTimeout,
    StoreError,
    WriteConflict,
)
from circuit_atlas.local_server import LocalServer, running_shared_server
from circuit_atlas.store import claims, schema, write_back
from circuit_atlas.store.abandon import stop_on_server
from circuit_atlas.store.artifact_files import artifact_path, remove_dead_temporaries
from circuit_atlas.store.bulk_channel import BulkChannel
from circuit_atlas.store.cypher_guard import assert_read_only
from circuit_atlas.store.deadline import call_with_deadline
from circuit_atlas.store.errors_map import NotRetried, translated, unless_out_of_memory
from circuit_atlas.store.records import record_rows
from circuit_atlas.store.settings import ConnectionSettings

if TYPE_CHECKING:
    # The array stack (numpy, pandas, pyarrow: about half a second) is imported by the methods
    # that handle graphs, not here, so opening a store to list or delete graphs, or to run
    # Cypher, stays quick (`circuit-atlas graphs`, benchmarks/startup.py).
    import pandas as pd

    from circuit_atlas.graph import CircuitGraph

# Neo4j sends notifications with query results ("property key does not exist" on a fresh
# database, for one) and the driver logs them as warnings; where the application has configured
# no logging, Python's last-resort handler printed them on every command's stderr. A library's
# NullHandler stops that and still lets an application that configures logging receive them.
logging.getLogger("neo4j.notifications").addHandler(logging.NullHandler())

__all__ = ["CircuitStore", "ConnectionSettings", "WriteResult"]

DELETE_BATCH = 5_000
GRAPH_LIST_COLUMNS = ("graph_id", "model", "method", "source_format", "nodes", "edges", "prompt")
# How long the driver retries a transaction that failed transiently (its default is 30 s, which
# kept a user waiting half a minute, and printing warnings, before "the server is down").
RETRY_WINDOW_S = 5.0
# Concurrent writers that MERGE the same new :Feature collide on its uniqueness constraint;
# the loser retries and then finds the winner's node. Attempts and first back-off.
FEATURE_MERGE_ATTEMPTS = 12
CLAIM_ATTEMPTS = 20
WRITE_ATTEMPTS = 10
BOLT_FEATURE_BATCH = 5_000
# Nodes + edges of the graphs one bulk load takes at most (write_graphs): big enough that a
# corpus of small graphs shares loads, small enough to bound the rows held in memory at once.
BATCH_ROWS = 2_000_000
BATCH_GRAPHS = 1_000  # and graphs: the shared server's request names each one

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


@dataclass(frozen=True)
class _Claimed:
    """A graph this writer has claimed, with its artifact once written."""

    graph: CircuitGraph
    token: str
    artifact: Path | None
    sha256: str


class CircuitStore:
    def __init__(
        self,
        driver: Driver,
        database: str | None,
        artifact_dir: Path,
        uri: str,
        user: str | None,
        local_server: LocalServer | None = None,
        owns_server: bool = False,
        reader: tuple[Driver, str] | None = None,
    ) -> None:
        self.driver = driver
        self.database = database
        self.artifact_dir = artifact_dir
        self.uri = uri
        self.user = user
        self.local_server = local_server
        self._owns_server = owns_server
        # (driver, user) of a principal the server lets only read: what read-only user Cypher
        # runs as. None: rely on READ access mode, which Neo4j enforces (docs/security.md).
        self.reader = reader
        # The shared local server's bulk path (store/bulk_channel.py), when it serves one.
        self.bulk_channel: BulkChannel | None = None
        self._backend: str | None = None
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
            reader_user, reader_password = endpoint.reader_user, endpoint.reader_password
        else:
            assert settings.uri is not None  # not uses_local_server
            uri, user, password = settings.uri, settings.user or "neo4j", settings.password
            # None: the server's default database ('neo4j' on Neo4j; Community has no other)
            database = settings.database
            reader_user, reader_password = settings.read_user, settings.read_password
        driver = _driver(uri, user, password)
        reader = None
        if reader_user:
            reader = (_driver(uri, reader_user, reader_password), reader_user)
        store = cls(driver, database, settings.artifacts, uri, user, server, owns, reader)
        if settings.uses_local_server and server is None and database is not None:
            assert settings.data_dir is not None
            store.bulk_channel = BulkChannel.find(settings.data_dir, password or "")
        try:
            with translated(uri, user):
                driver.verify_connectivity()
                store.ensure_schema()
            if reader is not None:
                with translated(uri, reader[1]):
                    reader[0].verify_connectivity()
            if owns:
                store.remove_interrupted_loads()
            else:
                with contextlib.suppress(StoreError):  # tidying must never stop a command
                    store.remove_dead_writers_graphs()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        _OPEN_STORES.discard(self)
        with contextlib.suppress(Exception):
            self.driver.close()
        if self.reader is not None:
            with contextlib.suppress(Exception):
                self.reader[0].close()
        if self._owns_server and self.local_server is not None:
            self.local_server.stop()
            self._owns_server = False

    def __enter__(self) -> CircuitStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    @contextlib.contextmanager
    def _session(self, write: bool, as_reader: bool = False) -> Generator[Any, None, None]:
        driver, user = self.driver, self.user
        if as_reader and self.reader is not None:
            driver, user = self.reader
        with (
            translated(self.uri, user),
            driver.session(
                database=self.database, default_access_mode=WRITE_ACCESS if write else READ_ACCESS
            ) as session,
        ):
            yield session

    def _write(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one internal write in its own transaction, retried on write conflicts."""
        return self._in_write_transaction(lambda run: run(cypher, params or {}))

    def _in_write_transaction(self, writer: Callable[..., Any], *args: Any) -> Any:
        """Run ``writer(run, *args)`` (``run(q, p)`` → rows) in one write transaction and
        commit; run it again from the start when a concurrent write conflicted (ArcadeDB
        reports conflicts on shared pages as such, Neo4j deadlocks), a bounded number of times.
        Other errors, out-of-memory included, are raised at once."""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                with self._session(write=True) as session, session.begin_transaction() as tx:
                    result = writer(_runner(tx), *args)
                    tx.commit()
                    return result
            except WriteConflict:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0.05, 0.1) * 2 ** min(attempt, 5))
        raise AssertionError("unreachable")

    def _read(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        def work(tx: Any) -> list[dict[str, Any]]:
            return record_rows(tx.run(cypher, params or {}))

        with self._session(write=False) as session:
            try:
                return session.execute_read(unless_out_of_memory(work))
            except NotRetried as wrapped:
                raise wrapped.error from None  # inside _session: translated to one line

    def ensure_schema(self) -> None:
        for statement in schema.schema_statements(self.backend):
            self._write(statement)

    @property
    def hosts_server(self) -> bool:
        """Whether this process hosts the server this store talks to (its engine is here)."""
        server = self.local_server
        return server is not None and server.running and server.endpoint.uri == self.uri

    @property
    def has_bulk_path(self) -> bool:
        if self.hosts_server:
            return True
        return self.bulk_channel is not None and self.bulk_channel.reachable()

    # ------------------------------------------------------------------ writing
    def _graph_record(self, graph_id: str) -> dict[str, Any] | None:
        """The ``:Graph``'s properties, with ``silent_s``: for how long (server clock) its claim
        has shown no sign of life (``claims.Holder.is_gone``)."""
        rows = self._read(
            "MATCH (g:Graph {graph_id: $gid}) " + claims.READ_RECORD, {"gid": graph_id}
        )
        return claims.record_with_silence(rows[0]) if rows else None

    def write_graph(
        self,
        graph: CircuitGraph,
        replace: bool = False,
        progress: bool = False,
        force_bolt: bool = False,
        before_ready: Callable[[Callable[[str, dict[str, Any]], Any]], None] | None = None,
    ) -> WriteResult:
        """Store ``graph`` atomically as readers see it (``'loading'`` until complete);
        ``before_ready(run)`` runs last before the graph turns ready, in its transaction where
        there is one (``write_derived`` links the graph to its parents there).

        The id is claimed first (``claims.py``): a second process writing the same id gets
        ``GraphBusy`` or ``GraphConflict`` and changes nothing; a failure cleans up only what
        this call's claim created."""
        from circuit_atlas.store import summaries
        from circuit_atlas.store.artifact import write_artifact
        from circuit_atlas.store.rows import feature_rows
        from circuit_atlas.store.writer import write_over_bolt

        started = time.perf_counter()
        gid = graph.graph_id
        content_hash = graph.content_hash()
        token = claims.new_token()
        status = self._claim_for_write(gid, content_hash, token, replace, graph)
        if status == "unchanged":
            return self._keep_unchanged(graph, content_hash, started)
        artifact: Path | None = None
        use_bulk = self.has_bulk_path and not force_bolt
        try:
            artifact, artifact_sha = write_artifact(graph, self.artifact_dir, content_hash)
            props = _loading_properties(graph, content_hash, artifact, artifact_sha, token)
            features = feature_rows(graph)
            self._merge_features(features)
            if use_bulk:
                self._claimed(claims.SET_CLAIMED_PROPERTIES, gid, token, props=props)
                self._write_bulk([_Claimed(graph, token, artifact, artifact_sha)], progress)
                self._in_write_transaction(
                    lambda run: summaries.write_summaries(run, graph, fresh=True)
                )
                if before_ready is not None:
                    before_ready(self._write)
                self._claimed(claims.MARK_READY, gid, token, ready=schema.READY)
            else:
                # One transaction per batch behind the 'loading' status, so a graph of any
                # size needs no more server memory than a batch; the last one links and flips
                # the graph to ready, so readers see all of it or nothing.
                self._claimed(claims.SET_CLAIMED_PROPERTIES, gid, token, props=props)
                write_over_bolt(self._claimed_batches(gid, token), graph, features, progress)

                def finish(run: Callable[[str, dict[str, Any]], list[dict[str, Any]]]) -> None:
                    _expect_claim(run(claims.HOLDS_CLAIM, _p(gid, token)))
                    summaries.write_summaries(run, graph, fresh=True)
                    if before_ready is not None:
                        before_ready(run)
                    _expect_claim(run(claims.MARK_READY, _p(gid, token, ready=schema.READY)))

                self._in_write_transaction(finish)
        except BaseException:
            with contextlib.suppress(Exception):
                self._release_claim(gid, token)
            if artifact is not None:
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

    def _keep_unchanged(
        self, graph: CircuitGraph, content_hash: str, started: float
    ) -> WriteResult:
        """The same content is stored: add only what an older version did not derive."""
        from circuit_atlas.store import summaries
        from circuit_atlas.store.artifact import write_artifact

        gid = graph.graph_id
        existing = self._graph_record(gid) or {}
        if not Path(existing.get("artifact_path", "")).exists():
            write_artifact(graph, self.artifact_dir, content_hash)
        if self._lacks_path_bounds(gid):  # stored by an older version
            self._set_path_bounds(gid, graph)
        if not self._read(
            summaries.HAS_SUMMARY, {"gid": gid, "version": summaries.SUMMARY_VERSION}
        ):
            self._in_write_transaction(lambda run: summaries.write_summaries(run, graph))
        seconds = time.perf_counter() - started
        return WriteResult(gid, "unchanged", graph.n_nodes, graph.n_edges, seconds, "none")

    def _write_bulk(self, claimed: list[_Claimed], progress: bool) -> None:
        """Nodes and edges of claimed graphs through the engine's bulk API, in one batch: here
        when this process hosts the server, else by the shared server from the artifacts just
        written (bulk_channel.py)."""
        from tqdm.auto import tqdm

        from circuit_atlas.store.writer import write_bulk_embedded

        if self.hosts_server:
            assert self.local_server is not None
            database = self.local_server.embedded_database(self.database)
            write_bulk_embedded(database, [c.graph for c in claimed], progress)
            return
        assert self.bulk_channel is not None and self.database is not None
        total = sum(c.graph.n_nodes + c.graph.n_edges for c in claimed)
        label = claimed[0].graph.graph_id if len(claimed) == 1 else f"{len(claimed)} graphs"
        with tqdm(
            total=total, desc=f"bulk {label}", unit="row", disable=not progress, leave=False
        ) as bar:
            self.bulk_channel.load(
                self.database,
                [(c.graph.graph_id, c.token, c.artifact, c.sha256) for c in claimed],
                bar.update,
            )

    def write_graphs(
        self,
        graphs: list[CircuitGraph],
        replace: bool = False,
        progress: bool = False,
        on_result: Callable[[WriteResult], Any] | None = None,
    ) -> list[WriteResult]:
        """Store several graphs, each atomically as readers see it, like ``write_graph`` one by
        one; on the bulk path many graphs share one load (``BATCH_ROWS`` nodes and edges at
        most), so a corpus of small graphs pays the load's fixed costs once per batch instead
        of once per graph. ``on_result`` hears of each graph as it turns ready (or is found
        unchanged), so a caller that stops midway knows what it created.

        Every graph is checked first (``check_writable``), so a conflict or a busy id refuses
        the whole call before anything is written. Each graph keeps its own claim: a writer that
        takes an id after the check is refused as by ``write_graph``, and a failure removes what
        this call's claims created that is not yet ready (graphs already reported to
        ``on_result`` stay)."""
        self.check_writable(graphs, replace=replace)
        results: list[WriteResult] = []

        def report(result: WriteResult) -> None:
            results.append(result)
            if on_result is not None:
                on_result(result)

        if not self.has_bulk_path:
            for graph in graphs:
                report(self.write_graph(graph, replace=replace, progress=progress))
            return results
        batch: list[CircuitGraph] = []
        rows = 0
        for graph in graphs:
            full = rows + graph.n_nodes + graph.n_edges > BATCH_ROWS or len(batch) >= BATCH_GRAPHS
            if batch and full:
                self._write_batch(batch, replace, progress, report)
                batch, rows = [], 0
            batch.append(graph)
            rows += graph.n_nodes + graph.n_edges
        if batch:
            self._write_batch(batch, replace, progress, report)
        return results

    def _write_batch(
        self,
        graphs: list[CircuitGraph],
        replace: bool,
        progress: bool,
        report: Callable[[WriteResult], None],
    ) -> None:
        """Claim every graph, write artifacts and features, load them all at once, then turn
        each ready (see ``write_graphs``)."""
        from circuit_atlas.store import summaries
        from circuit_atlas.store.artifact import write_artifact
        from circuit_atlas.store.rows import feature_rows

        started = time.perf_counter()
        claimed: list[_Claimed] = []
        statuses: dict[str, str] = {}
        try:
            for graph in graphs:
                gid, token = graph.graph_id, claims.new_token()
                content_hash = graph.content_hash()
                status = self._claim_for_write(gid, content_hash, token, replace, graph)
                if status == "unchanged":
                    report(self._keep_unchanged(graph, content_hash, time.perf_counter()))
                    continue
                statuses[gid] = status
                claimed.append(_Claimed(graph, token, None, ""))
                artifact, sha = write_artifact(graph, self.artifact_dir, content_hash)
                claimed[-1] = _Claimed(graph, token, artifact, sha)
                props = _loading_properties(graph, content_hash, artifact, sha, token)
                self._claimed(claims.SET_CLAIMED_PROPERTIES, gid, token, props=props)
            if not claimed:
                return
            self._merge_features([row for c in claimed for row in feature_rows(c.graph)])
            self._write_bulk(claimed, progress)
            total = sum(c.graph.n_nodes + c.graph.n_edges for c in claimed)
            # One transaction turns the whole batch ready, each graph behind its own claim:
            # readers see every graph of it whole, and a batch costs one round trip, not six
            # a graph.
            ready = list(claimed)

            def finish(run: Callable[[str, dict[str, Any]], list[dict[str, Any]]]) -> None:
                summaries.write_many_summaries(run, [c.graph for c in ready], fresh=True)
                held = run(
                    claims.MARK_ALL_READY,
                    {
                        "claims": [{"gid": c.graph.graph_id, "token": c.token} for c in ready],
                        "ready": schema.READY,
                    },
                )
                if not held or held[0].get("n") != len(ready):  # one lost: roll it all back
                    _expect_claim([])

            self._in_write_transaction(finish)
            claimed.clear()
            seconds = time.perf_counter() - started
            for c in ready:
                share = seconds * (c.graph.n_nodes + c.graph.n_edges) / max(total, 1)
                report(
                    WriteResult(
                        c.graph.graph_id,
                        statuses[c.graph.graph_id],
                        c.graph.n_nodes,
                        c.graph.n_edges,
                        share,
                        "bulk",
                    )
                )
        except BaseException:
            for c in claimed:
                with contextlib.suppress(Exception):
                    self._release_claim(c.graph.graph_id, c.token)
                if c.artifact is not None:
                    with contextlib.suppress(OSError):
                        c.artifact.unlink()
            raise

    def check_writable(self, graphs: list[CircuitGraph], replace: bool = False) -> dict[str, str]:
        """Before writing several graphs: what each write would do (``"created"``,
        ``"unchanged"`` or ``"replaced"``), or one ``GraphConflict``/``GraphBusy`` naming every
        graph that would be refused, so a batch fails before its first write rather than midway.
        (A concurrent writer can still take an id between this check and the write; the write's
        own claim then refuses it.)"""
        plan: dict[str, str] = {}
        conflicts: list[str] = []
        busy: list[GraphBusy] = []
        for graph in graphs:
            record = self._graph_record(graph.graph_id)
            if record is None:
                plan[graph.graph_id] = "created"
                continue
            holder = claims.Holder.of(record)
            if holder.status != schema.READY and not holder.is_gone():
                busy.append(_busy(graph.graph_id, holder))
            elif holder.status != schema.READY:
                plan[graph.graph_id] = "created"
            elif same_content(holder.content_hash, graph):
                plan[graph.graph_id] = "unchanged"
            elif replace:
                plan[graph.graph_id] = "replaced"
            else:
                conflicts.append(graph.graph_id)
        if len(graphs) == 1 and conflicts:  # the message a single write gives
            raise _conflict(conflicts[0])
        if conflicts:
            raise GraphConflict(
                f"nothing written: {len(conflicts)} graph(s) already exist with different "
                f"content: {', '.join(map(repr, conflicts))}; pass --replace to overwrite them or "
                "--graph-id to store a file under another id"
            )
        if len(busy) == 1:
            raise busy[0]
        if busy:
            raise GraphBusy(f"nothing written: {'; '.join(str(b) for b in busy)}")
        return plan

    def _claim_for_write(
        self, gid: str, content_hash: str, token: str, replace: bool, graph: CircuitGraph
    ) -> str:
        """Claim ``gid`` for this write: ``"created"``, ``"replaced"`` (the old graph is
        deleted first, under our claim) or ``"unchanged"`` (the same content is stored)."""
        for _ in range(CLAIM_ATTEMPTS):
            try:
                self._write(
                    claims.CLAIM,
                    {
                        "gid": gid,
                        "status": schema.LOADING,
                        "token": token,
                        "writer": claims.this_writer(),
                        "space": claims.this_space(),
                        "now": time.time(),
                    },
                )
                return "created"
            except DuplicateKey:
                pass
            record = self._graph_record(gid)
            if record is None:  # deleted in between: claim again
                continue
            holder = claims.Holder.of(record)
            if holder.status == schema.READY:
                if same_content(holder.content_hash, graph, content_hash):
                    return "unchanged"
                if not replace:
                    raise _conflict(gid)
                if self._take_over(gid, holder, token, schema.DELETING):
                    self._empty_claimed_graph(gid, token, record.get("artifact_path"))
                    return "replaced"
                continue
            if holder.is_gone() and self._take_over(gid, holder, token, schema.DELETING):
                self._empty_claimed_graph(gid, token, record.get("artifact_path"))
                return "created"
            if not holder.is_gone():
                raise _busy(gid, holder)
        raise GraphBusy(f"graph {gid!r} is contended by other writers; try again")

    def _take_over(self, gid: str, seen: claims.Holder, token: str, status: str) -> bool:
        try:
            rows = self._write(claims.TAKE_OVER, claims.take_over_params(gid, seen, status, token))
        except StoreError:  # a concurrent take-over won the conflict
            return False
        return bool(rows) and rows[0]["n"] == 1

    def _empty_claimed_graph(self, gid: str, token: str, artifact_path: str | None) -> None:
        """Delete what a claimed graph held (nodes, analysis results, artifact) and reset its
        ``:Graph`` to a bare ``'loading'`` claim of ours."""
        self._delete_graph_contents(gid)
        _unlink(artifact_path)
        self._claimed(
            claims.RESET_CLAIMED,
            gid,
            token,
            status=schema.LOADING,
            writer=claims.this_writer(),
            space=claims.this_space(),
            now=time.time(),
        )

    def _claimed(self, cypher: str, gid: str, token: str, **params: Any) -> None:
        """Run a statement conditioned on our claim; fail loudly if the claim was lost."""
        _expect_claim(self._write(cypher, _p(gid, token, **params)))

    def _claimed_batches(
        self, gid: str, token: str
    ) -> Callable[[str, dict[str, Any]], list[dict[str, Any]]]:
        """A statement runner for one claimed graph: each statement commits in a transaction of
        its own, after checking the claim is still ours (retried on write conflicts)."""

        def run(cypher: str, params: dict[str, Any]) -> list[dict[str, Any]]:
            def batch(tx_run: Callable[[str, dict[str, Any]], list[dict[str, Any]]]) -> Any:
                _expect_claim(tx_run(claims.HOLDS_CLAIM, _p(gid, token)))
                return tx_run(cypher, params)

            return self._in_write_transaction(batch)

        return run

    def remove_dead_writers_graphs(self) -> list[str]:
        """Delete graphs left ``'loading'`` or ``'deleting'`` by a writer that has died (a
        batched Bolt write killed midway): a process of this host that is gone, or a claim from
        anywhere silent for ``claims.SILENT_CLAIM_S``. Runs whenever a store opens, so a killed
        load is gone by the next command. Claims of live writers are left."""
        rows = self._read(
            "MATCH (g:Graph) WHERE g.status <> $ready " + claims.READ_RECORD,
            {"ready": schema.READY},
        )
        removed = []
        for row in rows:
            record = claims.record_with_silence(row)
            holder = claims.Holder.of(record)
            if not holder.is_gone():
                continue
            token = claims.new_token()
            if self._take_over(record["graph_id"], holder, token, schema.DELETING):
                self._delete_graph_contents(record["graph_id"])
                self._write(
                    claims.DELETE_CLAIMED_GRAPH, {"gid": record["graph_id"], "token": token}
                )
                _unlink(record.get("artifact_path"))
                removed.append(record["graph_id"])
        return removed

    def _release_claim(self, gid: str, token: str) -> None:
        """After a failed write: remove what our claim created, and nothing of anyone else."""
        record = self._graph_record(gid)
        if record is None or record.get("writer_token") != token:
            return
        self._delete_graph_contents(gid)
        self._write(claims.DELETE_CLAIMED_GRAPH, {"gid": gid, "token": token})

    def _merge_features(self, features: list[dict[str, Any]]) -> None:
        """MERGE the graph's shared ``:Feature`` identities in small committed transactions,
        before the graph itself: retried when a concurrent writer created one first. Rows are
        one per feature node; each identity is merged once."""
        from circuit_atlas.store.writer import MERGE_FEATURES

        identity = ("model", "transcoder_set", "layer", "feature")
        unique = {tuple(row[k] for k in identity) for row in features}
        features = [dict(zip(identity, values)) for values in sorted(unique)]
        for start in range(0, len(features), BOLT_FEATURE_BATCH):
            rows = features[start : start + BOLT_FEATURE_BATCH]
            for attempt in range(FEATURE_MERGE_ATTEMPTS):
                try:
                    self._write(MERGE_FEATURES, {"rows": rows})
                    break
                except DuplicateKey:
                    if attempt == FEATURE_MERGE_ATTEMPTS - 1:
                        raise
                    time.sleep(random.uniform(0.02, 0.05) * 2 ** min(attempt, 6))

    # ------------------------------------------------------------------ deleting
    def _delete_graph_contents(self, graph_id: str, progress: bool = False) -> None:
        """Delete a graph's nodes in batches (whole-graph DETACH DELETE is slow on ArcadeDB),
        then its analysis results; the ``:Graph`` node stays (it holds the claim)."""
        from tqdm.auto import tqdm

        from circuit_atlas.store import summaries

        total = None
        if progress:
            total = self._read(
                "MATCH (n:Node {graph_id: $gid}) RETURN count(n) AS c", {"gid": graph_id}
            )[0]["c"]
        with tqdm(
            total=total, desc=f"delete {graph_id}", unit="node", disable=not progress, leave=False
        ) as bar:
            while True:
                rows = self._write(
                    "MATCH (n:Node {graph_id: $gid}) WITH n LIMIT $limit DETACH DELETE n "
                    "RETURN count(*) AS deleted",
                    {"gid": graph_id, "limit": DELETE_BATCH},
                )
                deleted = rows[0]["deleted"] if rows else 0
                if deleted == 0:
                    break
                bar.update(deleted)
        self._write(write_back.DELETE_SUPERNODES_OF_GRAPH, {"gid": graph_id})
        for statement in summaries.DELETE_SUMMARIES:
            self._write(statement, {"gid": graph_id})
        self._write(write_back.DELETE_MOTIF_STATS, {"gid": graph_id})
        self._write(write_back.DELETE_SUBGRAPHS, {"gid": graph_id})
        self._write(write_back.DELETE_ROIS_OF_GRAPH, {"gid": graph_id})

    def delete_graph(self, graph_id: str, force: bool = False, progress: bool = False) -> None:
        """Delete a graph as readers see it at once: flipped to ``'deleting'`` (hidden) first,
        then emptied in batches, the ``:Graph`` last; an interrupted delete is finished by
        :meth:`remove_interrupted_loads`. A graph another process is writing or deleting is
        refused (``GraphBusy``) unless that process is gone, or ``force``."""
        token = claims.new_token()
        for _ in range(CLAIM_ATTEMPTS):
            record = self._graph_record(graph_id)
            if record is None:
                raise GraphNotFound(f"no graph {graph_id!r} in the store")
            holder = claims.Holder.of(record)
            if holder.status != schema.READY and not (force or holder.is_gone()):
                raise _busy(graph_id, holder)
            if self._take_over(graph_id, holder, token, schema.DELETING):
                self._delete_graph_contents(graph_id, progress)
                self._write(claims.DELETE_CLAIMED_GRAPH, {"gid": graph_id, "token": token})
                _unlink(record.get("artifact_path"))
                return
        raise GraphBusy(f"graph {graph_id!r} is contended by other writers; try again")

    def remove_interrupted_loads(self) -> list[str]:
        """Finish what died midway: delete graphs left ``'loading'`` or ``'deleting'`` with their
        artifacts, and half-written artifacts of dead processes. Runs when this process hosts
        the local server, so no other process can be writing; elsewhere a dead writer's claim
        is taken over by the next writer of that id, or cleared by ``rm --force``."""
        rows = self._read(
            "MATCH (g:Graph) WHERE g.status <> $ready RETURN g.graph_id AS gid, "
            "g.artifact_path AS artifact",
            {"ready": schema.READY},
        )
        for row in rows:
            self._delete_graph_contents(row["gid"])
            self._write("MATCH (g:Graph {graph_id: $gid}) DETACH DELETE g", {"gid": row["gid"]})
            _unlink(row["artifact"])
            _unlink(str(artifact_path(self.artifact_dir, row["gid"])))
        remove_dead_temporaries(self.artifact_dir)
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

    def write_motif_stats(self, graph_id: str, rows: list[dict[str, Any]]) -> None:
        """Replace ``graph_id``'s motif census (rows of ``analysis/motifs/stored.py``)."""
        self.graph_info(graph_id)
        self._in_write_transaction(lambda run: write_back.write_motif_stats(run, graph_id, rows))

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
        ``circuit_atlas/store/path_bounds.py``): path queries on them are exact but unpruned."""
        rows = self._read(
            "MATCH (n:Node) WHERE n.prefix_bound IS NULL WITH DISTINCT n.graph_id AS gid "
            "MATCH (g:Graph {graph_id: gid, status: $ready}) RETURN gid ORDER BY gid",
            {"ready": schema.READY},
        )
        return [row["gid"] for row in rows]

    def graphs_without_summaries(self) -> list[str]:
        """Ready graphs written before the store kept summaries (``store/summaries.py``): the
        queries that read them refuse these graphs until ``upgrade`` adds them."""
        from circuit_atlas.store import summaries

        rows = self._read(summaries.GRAPHS_WITHOUT_SUMMARY, {"version": summaries.SUMMARY_VERSION})
        return [row["gid"] for row in rows]

    def add_summaries(self, graph_id: str) -> None:
        """Compute a stored graph's summaries from its exact artifact (or the database copy)
        and store them, replacing any, in one transaction."""
        from circuit_atlas.store import summaries

        try:
            graph = self.read_artifact(graph_id)
        except ArtifactUnavailable:
            graph = self.read_graph(graph_id)
        self._in_write_transaction(lambda run: summaries.write_summaries(run, graph))

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
        from circuit_atlas.store.rows import path_bound_properties

        rows = [
            {"node_key": key.encode(), "props": props}
            for key, props in zip(graph.keys(), path_bound_properties(graph))
        ]
        return self._in_write_transaction(
            lambda run: write_back.set_node_properties(
                run, rows, write_back.node_ids(run, graph_id)
            )
        )

    def subgraphs(self, graph_id: str) -> list[dict[str, Any]]:
        """Stored subgraphs of a graph (by name), each with its pinned node keys
        (``members``) and its supernodes (``[{"label", "members"}]``, in their saved order)."""
        self.graph_info(graph_id)
        rows = self._read(
            "MATCH (s:Subgraph {graph_id: $gid}) "
            "OPTIONAL MATCH (n:Node)-[:PINNED_IN]->(s) "
            "WITH s, n ORDER BY n.node_key "
            "RETURN s.subgraph_id AS subgraph_id, s.name AS name, properties(s) AS props, "
            "collect(n.node_key) AS members ORDER BY name, subgraph_id",
            {"gid": graph_id},
        )
        groups = self._read(
            "MATCH (p:Supernode {graph_id: $gid}) "
            "OPTIONAL MATCH (n:Node)-[:IN_SUPERNODE]->(p) "
            "WITH p, n ORDER BY n.node_key "
            "RETURN p.subgraph_id AS subgraph_id, p.index AS index, p.label AS label, "
            "collect(n.node_key) AS members ORDER BY subgraph_id, index",
            {"gid": graph_id},
        )
        for row in rows:
            row["supernodes"] = [
                {"label": g["label"], "members": g["members"]}
                for g in groups
                if g["subgraph_id"] == row["subgraph_id"]
            ]
        return rows

    def roi_groups(self, run_id: str, graph_id: str) -> list[dict[str, Any]]:
        """The ROIs of a run as groups of ``graph_id``'s nodes (``{"index", "size",
        "members"}``): its own nodes for a run on that graph, the graph's instances of the
        member features for a cross-prompt run. A clear error for an unknown run."""
        self.graph_info(graph_id)
        if not self._read("MATCH (r:ROI {run_id: $run}) RETURN r.index AS i LIMIT 1",
                          {"run": run_id}):  # fmt: skip
            raise GraphNotFound(
                f"no ROI run {run_id!r} in the store (`circuit-atlas roi` prints run ids; "
                "list them with the query `MATCH (r:ROI) RETURN DISTINCT r.run_id`)"
            )
        return self._read(
            "MATCH (r:ROI {run_id: $run})<-[:IN_ROI]-(m) "
            "OPTIONAL MATCH (m)<-[:INSTANCE_OF]-(i:Node {graph_id: $gid}) "
            "WITH r, coalesce(i, m) AS n "
            "WHERE n.node_key IS NOT NULL AND n.graph_id = $gid "
            "WITH r, n ORDER BY n.node_key "
            "RETURN r.index AS index, r.size AS size, collect(n.node_key) AS members "
            "ORDER BY index",
            {"run": run_id, "gid": graph_id},
        )

    def subgraph(self, graph_id: str, name: str) -> dict[str, Any]:
        """The stored subgraph ``name`` of a graph; a clear error naming the stored ones."""
        stored = self.subgraphs(graph_id)
        for row in stored:
            if row["name"] == name:
                return row
        names = ", ".join(repr(row["name"]) for row in stored) or "none"
        raise GraphNotFound(
            f"graph {graph_id!r} has no subgraph {name!r} (stored: {names}; "
            "`circuit-atlas score GRAPH --pinned … --name NAME` stores one)"
        )

    def write_derived(
        self, child: CircuitGraph, links: dict[str, dict[str, Any]], replace: bool = False
    ) -> WriteResult:
        """Write a graph computed from stored ones, linked ``DERIVED_FROM`` each parent
        (``links``: parent id → link properties) *before* it turns ready, so no reader ever sees
        it unlinked (it would count as an ordinary graph). If a link fails, the child is
        removed again with the rest of its write."""

        def link_all(run: Callable[[str, dict[str, Any]], list[dict[str, Any]]]) -> None:
            for parent, props in links.items():
                self.link_derived(child.graph_id, parent, props, run=run)

        result = self.write_graph(child, replace=replace, before_ready=link_all)
        if result.status == "unchanged":
            link_all(self._write)
        return result

    def link_derived(
        self,
        child: str,
        parent: str,
        props: dict[str, Any],
        run: Callable[[str, dict[str, Any]], list[dict[str, Any]]] | None = None,
    ) -> None:
        """``(child:Graph)-[:DERIVED_FROM props]->(parent:Graph)``, idempotently; ``run``: a
        statement runner of an open transaction (default: one of its own)."""
        rows = (run or self._write)(
            write_back.LINK_DERIVED, {"child": child, "parent": parent, "props": props}
        )
        if not rows or rows[0]["n"] == 0:
            raise GraphNotFound(f"cannot link {child!r} to {parent!r}: one of them is not stored")

    # ------------------------------------------------------------------ reading
    def graph_info(self, graph_id: str) -> dict[str, Any]:
        record = self._graph_record(graph_id)
        if record is None or record.get("status") != schema.READY:
            raise GraphNotFound(f"no graph {graph_id!r} in the store (see `circuit-atlas graphs`)")
        record.pop("silent_s", None)  # about claims, not the graph
        return record

    def read_graph(self, graph_id: str) -> CircuitGraph:
        """The graph as stored in the database (every node, edge and property)."""
        from circuit_atlas.store.rows import graph_from_rows, metadata_from_properties

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
        from circuit_atlas.store.artifact import read_artifact

        info = self.graph_info(graph_id)
        return read_artifact(Path(info["artifact_path"]), info.get("artifact_sha256"))

    def list_graphs(
        self,
        model: str | None = None,
        method: str | None = None,
        source_format: str | None = None,
        contains: str | None = None,
    ) -> pd.DataFrame:
        """Ready graphs, one row each, filtered by any of the arguments (see ``graph_rows``)."""
        import pandas as pd

        rows = self.graph_rows(model, method, source_format, contains)
        return pd.DataFrame(rows, columns=list(GRAPH_LIST_COLUMNS))

    def graph_rows(
        self,
        model: str | None = None,
        method: str | None = None,
        source_format: str | None = None,
        contains: str | None = None,
    ) -> list[dict[str, Any]]:
        """``list_graphs`` as plain records (``GRAPH_LIST_COLUMNS``), without pandas: what
        ``circuit-atlas graphs`` prints. ``source_format`` matches by prefix, ``contains`` any
        part of the id."""
        return self._read(
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
        """The rows of ``query_with_counters``."""
        return self.query_with_counters(cypher, params, write=write, timeout_s=timeout_s)[0]

    def query_with_counters(
        self,
        cypher: str,
        params: dict[str, Any] | None = None,
        *,
        write: bool = False,
        timeout_s: float | None = 60.0,
    ) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """Run user Cypher with parameters. Read-only unless ``write=True``.

        Read-only is enforced by the server: the query runs as a principal that may only read
        (the local server's ``reader`` user, or ``CIRCUIT_ATLAS_READ_USER``), or in a READ-mode
        session on Neo4j, which refuses writes itself. Before sending, a guard refuses write
        clauses, unknown procedures and transaction control with a message naming them, and the
        transaction is rolled back rather than committed (``docs/security.md``).

        ``timeout_s`` bounds the whole round trip on every server: it is sent as the
        transaction timeout (Neo4j stops the query there) and the caller also stops waiting
        then (ArcadeDB ignores the transaction timeout), asks the server to terminate the query
        (``store/abandon.py``) and raises ``QueryTimeout``. Where the server cannot terminate
        it, the abandoned query runs on to its end in the background; its rows are dropped and
        it never commits (``store/deadline.py``). ``None`` waits for ever.

        The counters are what the server reports the query changed (``nodes_created``,
        ``properties_set``, …; all zero for a read).
        """
        if not cypher or not cypher.strip():
            raise CypherError("empty query")
        if timeout_s is not None and not timeout_s > 0:
            raise CypherError(f"timeout must be a positive number of seconds, got {timeout_s}")
        if not write:
            assert_read_only(cypher)
            self._check_read_only_enforced()
        as_reader = not write and self.reader is not None
        query_user = self.reader[1] if self.reader is not None and as_reader else self.user

        def work(claim: Callable[[], bool]) -> tuple[list[dict[str, Any]], dict[str, int]]:
            with self._session(write=write, as_reader=as_reader) as session:
                tx = session.begin_transaction(timeout=timeout_s)
                try:
                    result = tx.run(cypher, params or {})
                    rows = record_rows(result)
                    counters = _counters(result.consume().counters)
                    if write and claim():
                        tx.commit()
                finally:
                    if tx.closed() is False:
                        tx.rollback()
            return rows, counters

        def timeout_error(stopped: bool) -> QueryTimeout:
            return QueryTimeout(
                f"query exceeded the {timeout_s:g} s time limit and was "
                f"{'stopped' if stopped else 'abandoned'}; raise the limit with --timeout SECONDS "
                "(timeout_s= in Python) or narrow the query"
            )

        def give_up() -> QueryTimeout:
            # Neo4j stops the query itself at its transaction timeout (the same timeout_s), so
            # it is stopped even when it has already gone from SHOW TRANSACTIONS.
            stopped = self._terminate_on_server(cypher, query_user) or self.backend == "neo4j"
            return timeout_error(stopped)

        try:
            return call_with_deadline(work, timeout_s, give_up)
        except QueryTimeout:  # Neo4j's own timeout won the race: the same message either way
            raise timeout_error(True) from None
        except KeyboardInterrupt:  # Ctrl-C: do not leave the query running on a shared server
            self._terminate_on_server(cypher, query_user)
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

    def _terminate_on_server(self, cypher: str, user: str | None) -> bool:
        """Best effort: stop an abandoned query on the server (see ``store/abandon.py``)."""

        def run(statement: str, params: dict[str, Any]) -> list[dict[str, Any]]:
            with self._session(write=True) as session:
                return record_rows(session.run(statement, params))

        return stop_on_server(run, cypher, user)

    def _check_read_only_enforced(self) -> None:
        """Refuse read-only user Cypher where nothing on the server would enforce it: without a
        read-only principal, only Neo4j's READ access mode does (ArcadeDB ignores it)."""
        if self.reader is not None or self.backend == "neo4j":
            return
        raise CypherError(
            f"the graph database at {self.uri} ({self.backend}) does not enforce read-only "
            "sessions, and no read-only user is configured: set CIRCUIT_ATLAS_READ_USER and "
            "CIRCUIT_ATLAS_READ_PASSWORD to a user that may only read, or pass --write"
        )

    @property
    def backend(self) -> str:
        """``"neo4j"``, ``"arcadedb"`` or the server's own agent name, from the Bolt handshake
        (ArcadeDB announces itself as ``Neo4j/5.26.0 compatible (ArcadeDB 26.10.2)``)."""
        if self._backend is None:
            with translated(self.uri, self.user):
                agent = (self.driver.get_server_info().agent or "").lower()
            if "arcadedb" in agent:
                self._backend = "arcadedb"
            elif agent.startswith("neo4j/"):
                self._backend = "neo4j"
            else:
                self._backend = agent.split("/", 1)[0] or "unknown"
        return self._backend

    def query_df(
        self, cypher: str, params: dict[str, Any] | None = None, **kwargs: Any
    ) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.query(cypher, params, **kwargs))


def _driver(uri: str, user: str, password: str | None) -> Driver:
    return GraphDatabase.driver(
        uri,
        auth=(user, password or ""),
        connection_timeout=10,
        max_transaction_retry_time=RETRY_WINDOW_S,
    )


def _runner(tx: Any) -> Callable[[str, dict[str, Any]], list[dict[str, Any]]]:
    return lambda q, p: record_rows(tx.run(q, p))


def _p(gid: str, token: str, **params: Any) -> dict[str, Any]:
    return {"gid": gid, "token": token, **params}


def _loading_properties(
    graph: CircuitGraph, content_hash: str, artifact: Path, artifact_sha: str, token: str
) -> dict[str, Any]:
    """The ``:Graph`` properties a claimed graph carries while its nodes and edges go in."""
    from circuit_atlas.store.rows import graph_properties

    return graph_properties(
        graph,
        status=schema.LOADING,
        content_hash=content_hash,
        artifact_path=str(artifact),
        artifact_sha256=artifact_sha,
        ingested_at=time.time(),
        writer=claims.this_writer(),
        writer_token=token,
    )


def _expect_claim(rows: list[dict[str, Any]]) -> None:
    if not rows or rows[0].get("n") != 1:
        raise GraphBusy(
            "this write lost its claim on the graph id (another process removed it with "
            "rm --force); nothing of this write was kept"
        )


COUNTER_NAMES = (
    "nodes_created",
    "nodes_deleted",
    "relationships_created",
    "relationships_deleted",
    "properties_set",
    "labels_added",
    "labels_removed",
    "indexes_added",
    "indexes_removed",
    "constraints_added",
    "constraints_removed",
)


def _counters(counters: Any) -> dict[str, int]:
    """The driver's ``SummaryCounters`` as a plain dict."""
    return {name: int(getattr(counters, name, 0) or 0) for name in COUNTER_NAMES}


def _conflict(gid: str) -> GraphConflict:
    return GraphConflict(
        f"graph {gid!r} already exists with different content; pass --replace "
        "to overwrite it or --graph-id to store it under another id"
    )


def same_content(stored_hash: str, graph: CircuitGraph, current_hash: str | None = None) -> bool:
    """Whether a stored ``content_hash`` is ``graph``'s: today's hash (``current_hash`` when the
    caller has it), or, only if that differs, the one older versions recorded (which included
    the source file name; ``CircuitGraph.content_hash``). Hashing a large graph takes seconds."""
    if stored_hash == (current_hash or graph.content_hash()):
        return True
    return stored_hash == graph.content_hash(with_provenance=True)


def _busy(gid: str, holder: claims.Holder) -> GraphBusy:
    doing = "deleted" if holder.status == schema.DELETING else "written"
    return GraphBusy(
        f"graph {gid!r} is being {doing} by {holder.describe()}; try again when it has "
        f"finished (if that process is gone, `circuit-atlas rm --force {gid}` clears it)"
    )


def _unlink(path: str | None) -> None:
    if path:
        with contextlib.suppress(OSError):
            Path(path).unlink()


def open_store(**overrides: Any) -> CircuitStore:
    """Shorthand for ``CircuitStore.open(ConnectionSettings.resolve(**overrides))``."""
    return CircuitStore.open(ConnectionSettings.resolve(**overrides))
