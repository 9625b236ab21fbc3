"""Writers sharing one store never destroy each other's data, and deletes are atomic as readers
see them. Real processes against the real server; every count is checked exactly afterwards."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from neo4j import GraphDatabase

from circuit_atlas.errors import GraphBusy, GraphConflict, GraphNotFound
from circuit_atlas.ingest import load_graph
from circuit_atlas.store import CircuitStore, ConnectionSettings, claims, schema
from circuit_atlas.testing.synthetic import synthetic_neuronpedia

from helpers.cli import run_cli
from helpers.data import bundled
from helpers.processes import kill_when, start_cli

BEE = "abeeisatypeof-1759386939498"

pytestmark = pytest.mark.backends("arcadedb", "neo4j")


def claim_as(
    store: CircuitStore,
    gid: str,
    pid: int,
    token: str = "theirs",
    host: str | None = None,
    space: str | None = None,
    silent_s: float = 0.0,
) -> None:
    """Put a claim on ``gid`` as process ``pid`` of ``host`` (this one by default) would have,
    its last sign of life ``silent_s`` ago by the server's clock."""
    store._write(
        claims.CLAIM,
        {
            "gid": gid,
            "status": schema.LOADING,
            "token": token,
            "writer": f"{host or socket.gethostname()}:{pid}",
            "space": claims.this_space() if space is None else space,
            "now": time.time(),
        },
    )
    store._write(
        "MATCH (g:Graph {graph_id: $gid}) SET g.heartbeat_at = timestamp() - $ms",
        {"gid": gid, "ms": int(silent_s * 1000)},
    )


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_live_writers_claim_is_never_touched(fresh_store: CircuitStore):
    graph = load_graph(bundled("bee-insect-clt.json.gz"))
    claim_as(fresh_store, graph.graph_id, os.getppid())
    with pytest.raises(GraphBusy, match=rf"graph '{BEE}' is being written by process .*:\d+"):
        fresh_store.write_graph(graph)
    with pytest.raises(GraphBusy, match="being written"):
        fresh_store.write_graph(graph, replace=True)
    with pytest.raises(GraphBusy, match="rm --force"):
        fresh_store.delete_graph(graph.graph_id)
    record = fresh_store._graph_record(graph.graph_id)
    assert record is not None and record["writer_token"] == "theirs"
    assert fresh_store.list_graphs().empty  # a claim is not a graph
    with pytest.raises(GraphNotFound):
        fresh_store.graph_info(graph.graph_id)
    fresh_store.delete_graph(graph.graph_id, force=True)
    assert fresh_store._graph_record(graph.graph_id) is None


def test_a_dead_writers_claim_and_leftovers_are_taken_over(fresh_store: CircuitStore):
    graph = load_graph(bundled("bee-insect-clt.json.gz"))
    claim_as(fresh_store, graph.graph_id, dead_pid())
    fresh_store._write(  # half a load: nodes the dead writer got in
        "UNWIND range(1, 7) AS i CREATE (:Node {graph_id: $gid, node_key: 'x' + i})",
        {"gid": graph.graph_id},
    )
    result = fresh_store.write_graph(graph)
    assert result.status == "created"
    assert fresh_store.count_graph(graph.graph_id) == (graph.n_nodes, graph.n_edges)


def test_another_hosts_claim_is_judged_by_its_silence(fresh_store: CircuitStore):
    """A pid means nothing from another host, but a claim that has committed nothing for
    SILENT_CLAIM_S (server clock) is dead from anywhere: opening a store removes it, and with
    it what that writer got in. A claim from there that is still talking is left alone."""
    graph = load_graph(bundled("bee-insect-clt.json.gz"))
    talking = "talking-" + graph.graph_id
    claim_as(fresh_store, talking, 4242, token="t1", host="elsewhere.example", silent_s=5)
    claim_as(fresh_store, graph.graph_id, 4242, host="elsewhere.example",
             silent_s=claims.SILENT_CLAIM_S + 60)  # fmt: skip
    fresh_store._write(  # half a load: nodes the silent writer got in
        "UNWIND range(1, 7) AS i CREATE (:Node {graph_id: $gid, node_key: 'x' + i})",
        {"gid": graph.graph_id},
    )
    with pytest.raises(GraphBusy, match="being written by process elsewhere.example:4242"):
        fresh_store.write_graph(load_graph(bundled("nobel-clt.json.gz"), graph_id=talking))
    assert fresh_store.remove_dead_writers_graphs() == [graph.graph_id]
    assert fresh_store._graph_record(graph.graph_id) is None
    assert fresh_store.count_graph(graph.graph_id) == (0, 0)
    assert (fresh_store._graph_record(talking) or {}).get("writer_token") == "t1"
    fresh_store.delete_graph(talking, force=True)


def test_a_pid_is_only_judged_in_its_own_process_space(fresh_store: CircuitStore):
    """Two containers may share a host name: a dead pid in another pid namespace or boot says
    nothing about the writer, so its claim stands until it falls silent."""
    graph = load_graph(bundled("bee-insect-clt.json.gz"))
    claim_as(fresh_store, graph.graph_id, dead_pid(), space="another-boot/pid:[1]")
    with pytest.raises(GraphBusy, match="being written"):
        fresh_store.write_graph(graph)
    assert fresh_store.remove_dead_writers_graphs() == []
    fresh_store.delete_graph(graph.graph_id, force=True)


def test_every_batch_of_a_write_is_a_sign_of_life(fresh_store: CircuitStore):
    """The Bolt path commits batch by batch; each first checks the claim and stamps it with
    the server's clock, so a long write is never mistaken for a silent one."""
    gid = "long-write"
    claim_as(fresh_store, gid, os.getpid(), token="ours", silent_s=claims.SILENT_CLAIM_S - 1)
    assert (fresh_store._graph_record(gid) or {})["silent_s"] > claims.SILENT_CLAIM_S - 10
    run_batch = fresh_store._claimed_batches(gid, "ours")
    run_batch("UNWIND range(1, 3) AS i CREATE (:Node {graph_id: $gid, node_key: 'k' + i})",
              {"gid": gid})  # fmt: skip
    assert (fresh_store._graph_record(gid) or {})["silent_s"] < 60
    assert fresh_store.remove_dead_writers_graphs() == []
    fresh_store.delete_graph(gid, force=True)


def test_a_losing_writer_leaves_the_winners_graph_whole(fresh_store: CircuitStore):
    bee = load_graph(bundled("bee-insect-clt.json.gz"))
    other = load_graph(bundled("nobel-clt.json.gz"), graph_id=bee.graph_id)
    fresh_store.write_graph(bee)
    with pytest.raises(GraphConflict):
        fresh_store.write_graph(other)
    assert fresh_store.count_graph(bee.graph_id) == (bee.n_nodes, bee.n_edges)
    assert fresh_store.read_artifact(bee.graph_id).content_hash() == bee.content_hash()


def test_replace_swaps_content_and_artifact(fresh_store: CircuitStore):
    bee = load_graph(bundled("bee-insect-clt.json.gz"))
    other = load_graph(bundled("nobel-clt.json.gz"), graph_id=bee.graph_id)
    fresh_store.write_graph(bee)
    assert fresh_store.write_graph(other, replace=True).status == "replaced"
    assert fresh_store.count_graph(bee.graph_id) == (other.n_nodes, other.n_edges)
    assert fresh_store.read_artifact(bee.graph_id).content_hash() == other.content_hash()
    assert fresh_store.graph_info(bee.graph_id)["status"] == schema.READY


# ---------------------------------------------------------------------- real processes
def write_graph_file(folder: Path, name: str, seed: int, slug: str, nodes: int, edges: int) -> Path:
    path = folder / f"{name}.json"
    path.write_text(json.dumps(synthetic_neuronpedia(nodes, edges, seed=seed, slug=slug)))
    return path


def root_store(env: dict[str, str], tmp_path: Path) -> CircuitStore:
    return CircuitStore.open(
        ConnectionSettings(
            uri=env["NEO4J_URI"],
            user=env["NEO4J_USER"],
            password=env["NEO4J_PASSWORD"],
            database=env.get("NEO4J_DATABASE"),
            artifact_dir=Path(env["CIRCUIT_ATLAS_DATA_DIR"]) / "artifacts",
            read_user=env.get("CIRCUIT_ATLAS_READ_USER"),
            read_password=env.get("CIRCUIT_ATLAS_READ_PASSWORD"),
        )
    )


@pytest.mark.slow
def test_two_processes_ingesting_one_new_id(bolt_env, tmp_path: Path):
    files = [
        write_graph_file(tmp_path, f"v{i}", seed=i, slug="same-id", nodes=2000, edges=60_000)
        for i in range(2)
    ]
    graphs = [load_graph(f) for f in files]
    processes = [start_cli("ingest", str(f), env=bolt_env) for f in files]
    outcomes = [p.communicate(timeout=600) + (p.returncode,) for p in processes]
    winners = [i for i, (out, _, rc) in enumerate(outcomes) if rc == 0 and "created" in out]
    assert len(winners) == 1, outcomes
    loser = outcomes[1 - winners[0]]
    assert loser[2] == 1
    assert loser[1].strip().startswith("error: graph 'same-id' ")
    assert "being written by" in loser[1] or "already exists with different content" in loser[1]
    winner = graphs[winners[0]]
    with root_store(bolt_env, tmp_path) as store:
        assert store.list_graphs()["graph_id"].tolist() == ["same-id"]
        assert store.count_graph("same-id") == (winner.n_nodes, winner.n_edges)
        assert store.read_artifact("same-id").content_hash() == winner.content_hash()


@pytest.mark.slow
def test_four_processes_ingesting_graphs_that_share_features(bolt_env, tmp_path: Path):
    files = [
        write_graph_file(tmp_path, f"g{i}", seed=i, slug=f"graph-{i}", nodes=1500, edges=40_000)
        for i in range(4)
    ]
    graphs = [load_graph(f) for f in files]
    processes = [start_cli("ingest", str(f), env=bolt_env) for f in files]
    outcomes = [p.communicate(timeout=600) + (p.returncode,) for p in processes]
    assert [rc for _, _, rc in outcomes] == [0] * 4, [err for _, err, _ in outcomes]
    features = {
        (int(layer), int(feature))
        for g in graphs
        for layer, feature, kind in zip(g.nodes["layer"], g.nodes["feature"], g.nodes["kind"])
        if kind == "feature"
    }
    with root_store(bolt_env, tmp_path) as store:
        assert sorted(store.list_graphs()["graph_id"]) == [f"graph-{i}" for i in range(4)]
        for graph in graphs:
            assert store.count_graph(graph.graph_id) == (graph.n_nodes, graph.n_edges)
        stored_features = store.query("MATCH (f:Feature) RETURN count(f) AS c")[0]["c"]
        assert stored_features == len(features)
        links = store.query("MATCH (:Node)-[r:INSTANCE_OF]->(:Feature) RETURN count(r) AS c")
        assert links[0]["c"] == sum(int((g.nodes["kind"] == "feature").sum()) for g in graphs)


# ---------------------------------------------------------------------- killed deletes
@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("big-delete")
    return write_graph_file(folder, "big", seed=3, slug="big-graph", nodes=12_000, edges=60_000)


def listed(env: dict[str, str]) -> list[str]:
    rows = json.loads(run_cli("graphs", "--format", "json", env=env, check=True).stdout)
    return [row["graph_id"] for row in rows]


def node_count(env: dict[str, str]) -> int:
    rows = run_cli(
        "cypher", "MATCH (n:Node) RETURN count(n) AS c", "--format", "json", env=env, check=True
    )
    return json.loads(rows.stdout)[0]["c"]


@pytest.mark.slow
def test_a_delete_killed_midway_is_hidden_then_finished_at_next_start(big_file, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEO4J_", "CIRCUIT_ATLAS_"))}
    env["CIRCUIT_ATLAS_DATA_DIR"] = str(tmp_path / "local")
    run_cli("ingest", str(big_file), env=env, check=True)
    kill_when(["rm", "big-graph"], env, "5000/12000", after_s=0)
    assert listed(env) == []  # this start finished the delete
    assert node_count(env) == 0
    assert not list((tmp_path / "local" / "artifacts").glob("*.npz"))
    assert "created" in run_cli("ingest", str(big_file), env=env, check=True).stdout


@pytest.mark.slow
def test_a_delete_killed_midway_on_a_shared_server_is_never_seen_half_done(
    bolt_env, big_file, tmp_path
):
    run_cli("ingest", str(big_file), env=bolt_env, check=True)
    kill_when(["rm", "big-graph"], bolt_env, "5000/12000", after_s=0)
    # as the server holds it (a bare driver: opening a store would tidy it up)
    driver = GraphDatabase.driver(
        bolt_env["NEO4J_URI"], auth=(bolt_env["NEO4J_USER"], bolt_env["NEO4J_PASSWORD"])
    )
    with driver:
        records, _, _ = driver.execute_query(
            "MATCH (g:Graph {graph_id: 'big-graph'}) OPTIONAL MATCH (n:Node {graph_id: "
            "'big-graph'}) RETURN g.status AS status, count(n) AS nodes",
            database_=bolt_env.get("NEO4J_DATABASE") or None,
        )
    assert records[0]["status"] == schema.DELETING
    assert 0 < records[0]["nodes"] < 12_000  # really killed midway
    # never seen half done, and the next command to open the store finishes the delete
    assert listed(bolt_env) == []
    assert node_count(bolt_env) == 0
    shown = run_cli("show", "big-graph", env=bolt_env)
    assert shown.returncode == 1 and "no graph 'big-graph'" in shown.stderr
    assert "created" in run_cli("ingest", str(big_file), env=bolt_env, check=True).stdout
    with root_store(bolt_env, tmp_path) as store:
        assert store.count_graph("big-graph") == (12_000, 60_000)
    run_cli("rm", "big-graph", env=bolt_env, check=True)
    assert listed(bolt_env) == [] and node_count(bolt_env) == 0
