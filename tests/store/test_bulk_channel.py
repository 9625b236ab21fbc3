"""The shared server's bulk path (``store/bulk_channel.py``): same graph as the other paths,
refusals that write nothing, and the real ``db start`` server using it."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from circuit_atlas.errors import StoreError
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest import load_graph
from circuit_atlas.local_server import LocalServer, read_password
from circuit_atlas.store import CircuitStore
from circuit_atlas.store.artifact import read_artifact, write_artifact
from circuit_atlas.store.bulk_channel import BulkChannel, BulkLoadFailed, BulkService
from circuit_atlas.store.rows import node_property_rows

from helpers.cli import run_cli
from helpers.data import bundled
from helpers.graphs import assert_same_graph, random_attribution_graph

pytestmark = pytest.mark.backends("arcadedb")


@pytest.fixture
def channel(server: LocalServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BulkChannel]:
    """The session server's bulk channel, as ``db serve`` runs it, on a short socket path."""
    folder = tmp_path_factory.mktemp("bulk")
    service = BulkService(server, folder, read_password(server.data_dir))
    assert service.start()
    yield BulkChannel(service.path, read_password(server.data_dir))
    service.stop()


def through_channel(store: CircuitStore, channel: BulkChannel) -> CircuitStore:
    """Make ``store`` write as a command sharing the server does: not hosting it."""
    store.local_server = None
    store.bulk_channel = channel
    return store


def stored_nodes(store: CircuitStore, graph_id: str) -> int:
    rows = store._read("MATCH (n:Node {graph_id: $g}) RETURN count(n) AS n", {"g": graph_id})
    return rows[0]["n"]


def test_a_graph_loaded_through_the_channel_reads_back_the_same(fresh_store, channel):
    store = through_channel(fresh_store, channel)
    graph = load_graph(bundled("dollar.json.gz"))
    result = store.write_graph(graph)
    assert result.path == "bulk"
    assert_same_graph(store.read_graph(graph.graph_id), graph)
    assert store.write_graph(graph).status == "unchanged"
    bolt = random_attribution_graph(5)
    assert store.write_graph(bolt, force_bolt=True).path == "bolt"
    assert_same_graph(store.read_graph(bolt.graph_id), bolt)


def claimed(store: CircuitStore, graph: CircuitGraph, token: str) -> tuple[Path, str]:
    store._write(
        "CREATE (:Graph {graph_id: $g, status: 'loading', writer_token: $t})",
        {"g": graph.graph_id, "t": token},
    )
    return write_artifact(graph, store.artifact_dir, graph.content_hash())


@pytest.mark.parametrize(
    "problem, change",
    [
        ("wrong password", {"password": "guess"}),
        ("does not match its recorded SHA-256", {"sha256": "0" * 64}),
        ("is not claimed by this writer", {"token": "someone-else"}),
        ("holds graph", {"graph_id": "another"}),
        ("no database", {"database": "nowhere"}),
    ],
)
def test_a_refused_load_writes_nothing(fresh_store, channel, problem, change):
    graph = random_attribution_graph(1)
    artifact, sha = claimed(fresh_store, graph, "mine")
    item: dict[str, Any] = {"graph_id": graph.graph_id, "token": "mine",
                            "artifact": artifact, "sha256": sha}  # fmt: skip
    password = change.pop("password", None)
    database = change.pop("database", fresh_store.database)
    item.update(change)
    sender = BulkChannel(channel.path, password) if password else channel
    with pytest.raises(BulkLoadFailed, match=problem):
        sender.load(database, [(item["graph_id"], item["token"], item["artifact"], item["sha256"])])
    assert stored_nodes(fresh_store, graph.graph_id) == 0


def test_a_hostile_request_line_is_refused(channel):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(str(channel.path))
        connection.sendall(b"[1, 2]\n")
        reply = json.loads(connection.makefile("rb").readline())
    assert "one JSON object" in reply["error"]


def test_a_failed_channel_load_leaves_no_graph(fresh_store, channel):
    store = through_channel(fresh_store, BulkChannel(channel.path, "wrong"))
    graph = random_attribution_graph(2)
    with pytest.raises(StoreError, match="wrong password"):
        store.write_graph(graph)
    assert stored_nodes(store, graph.graph_id) == 0
    # the id is free again: the same write through a working channel succeeds
    store.bulk_channel = channel
    assert store.write_graph(graph).status == "created"


def test_a_stale_socket_means_bolt(fresh_store, tmp_path):
    stale = tmp_path / "bulk.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(stale))  # bound, never listening: what a killed server leaves
    store = through_channel(fresh_store, BulkChannel(stale, "x"))
    assert not store.has_bulk_path
    assert store.write_graph(random_attribution_graph(3)).path == "bolt"


def test_db_start_serves_the_bulk_channel(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "CIRCUIT_ATLAS"))}
    env["CIRCUIT_ATLAS_DATA_DIR"] = str(tmp_path / "shared")
    run_cli("db", "start", env=env, check=True)
    try:
        socket_file = tmp_path / "shared" / "bulk.sock"
        assert socket_file.is_socket() and (socket_file.stat().st_mode & 0o077) == 0
        ingested = run_cli("ingest", str(bundled("dollar.json.gz")), env=env, check=True)
        assert "created (bulk," in ingested.stdout
        listed = json.loads(run_cli("graphs", "--format", "json", env=env, check=True).stdout)
        assert [g["graph_id"] for g in listed] == ["gemma-dollar"]
        with CircuitStore.open(data_dir=tmp_path / "shared") as store:
            assert_same_graph(
                store.read_graph("gemma-dollar"), load_graph(bundled("dollar.json.gz"))
            )
    finally:
        run_cli("db", "stop", env=env, check=True)
    assert not (tmp_path / "shared" / "bulk.sock").exists()


def test_several_graphs_share_one_channel_load(fresh_store, channel):
    store = through_channel(fresh_store, channel)
    graphs = [load_graph(bundled("dollar.json.gz")), random_attribution_graph(6)]
    results = store.write_graphs(graphs)
    assert [(r.status, r.path) for r in results] == [("created", "bulk")] * 2
    for graph in graphs:
        assert_same_graph(store.read_graph(graph.graph_id), graph)


def test_list_properties_survive_the_artifact(fresh_store, channel):
    """Parquet gives list columns back as arrays: the channel must store the same lists (an SAE
    circuit's decoder directions broke the demo's shared-server run before this)."""
    graph = random_attribution_graph(7)
    nodes = graph.nodes.copy()
    nodes["decoder"] = [[0.5 * i, -1.0] for i in range(len(nodes))]
    graph = CircuitGraph(nodes, graph.edges, graph.metadata)
    artifact, _ = write_artifact(graph, fresh_store.artifact_dir, graph.content_hash())
    assert node_property_rows(read_artifact(artifact)) == node_property_rows(graph)
    store = through_channel(fresh_store, channel)
    assert store.write_graph(graph).path == "bulk"
    stored = store.query(
        "MATCH (n:Node {graph_id: $g}) RETURN n.node_key AS key, n.decoder AS decoder",
        {"g": graph.graph_id},
    )
    expected = dict(zip((k.encode() for k in graph.keys()), nodes["decoder"]))
    assert {row["key"]: row["decoder"] for row in stored} == expected


def test_a_batch_of_many_graphs_fits_one_request(fresh_store, channel):
    """A thousand graph names made a request line longer than the server first read (64 KiB):
    the JSON arrived cut and the whole ingest failed."""
    store = through_channel(fresh_store, channel)
    graphs = [
        CircuitGraph(small.nodes, small.edges, small.metadata.model_copy(update={"graph_id": gid}))
        for small in [random_attribution_graph(8, n_layers=1, n_pos=1, density=0.5)]
        for gid in (f"graph-with-a-longish-name-{i:04d}" for i in range(400))
    ]
    results = store.write_graphs(graphs)
    assert {(r.status, r.path) for r in results} == {("created", "bulk")}
