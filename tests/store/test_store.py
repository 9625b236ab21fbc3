"""The store against a real Bolt server: exact round trips, idempotence, atomic failure,
read-only Cypher, deletion. Nothing is mocked."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from circuit_atlas.errors import (
    ConnectionFailed,
    CypherError,
    GraphConflict,
    GraphNotFound,
    QueryTimeout,
    StoreError,
)
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest import load_graph
from circuit_atlas.store import CircuitStore
from circuit_atlas.store.abandon import SHOW, matching_transactions
from circuit_atlas.store.deadline import call_with_deadline
from circuit_atlas.store.settings import ConnectionSettings

from helpers.bolt_proxy import CuttingRelay
from helpers.data import bundled
from helpers.graphs import assert_same_graph
from helpers.skips import skip_test

# ~16 s on the 2-core development machine (20M is close to ArcadeDB's largest allowed range).
SLOW = "UNWIND range(1, 20000000) AS i WITH i WHERE i % 7 = 0 RETURN count(*) AS c"

pytestmark = pytest.mark.backends("arcadedb", "neo4j")


@pytest.mark.parametrize("name", ["dollar.json.gz", "gpt2-ioi-eap-ig.json.gz"])
@pytest.mark.parametrize("path", ["bulk", "bolt"])
def test_write_then_read_back_is_exact(fresh_store: CircuitStore, name: str, path: str):
    if path == "bulk" and not fresh_store.has_bulk_path:
        skip_test("the bulk path exists where this process hosts the local server")
    graph = load_graph(bundled(name))
    result = fresh_store.write_graph(graph, force_bolt=path == "bolt")
    assert result.status == "created" and result.path == path
    assert fresh_store.count_graph(graph.graph_id) == (graph.n_nodes, graph.n_edges)
    back = fresh_store.read_graph(graph.graph_id)
    assert_same_graph(graph, back)
    assert back.content_hash() == graph.content_hash()
    exact = fresh_store.read_artifact(graph.graph_id)
    assert exact.content_hash() == graph.content_hash()
    np.testing.assert_array_equal(exact.edges["weight"].to_numpy(), graph.edges["weight"])


def test_reingest_is_a_no_op_and_never_duplicates(fresh_store: CircuitStore):
    graph = load_graph(bundled("bee-insect-clt.json.gz"))
    fresh_store.write_graph(graph)
    features = fresh_store.query("MATCH (f:Feature) RETURN count(f) AS c")[0]["c"]
    again = fresh_store.write_graph(load_graph(bundled("bee-insect-clt.json.gz")))
    assert again.status == "unchanged"
    assert fresh_store.count_graph(graph.graph_id) == (graph.n_nodes, graph.n_edges)
    assert fresh_store.query("MATCH (f:Feature) RETURN count(f) AS c")[0]["c"] == features
    assert len(fresh_store.list_graphs()) == 1


def test_same_id_other_content_needs_replace(fresh_store: CircuitStore):
    graph = load_graph(bundled("bee-insect-clt.json.gz"))
    fresh_store.write_graph(graph)
    edges = graph.edges.copy()
    edges.loc[0, "weight"] += 1.0
    changed = CircuitGraph(graph.nodes, edges, graph.metadata)
    with pytest.raises(GraphConflict, match="--replace"):
        fresh_store.write_graph(changed)
    assert fresh_store.read_graph(graph.graph_id).content_hash() == graph.content_hash()
    assert fresh_store.write_graph(changed, replace=True).status == "replaced"
    assert fresh_store.read_graph(graph.graph_id).content_hash() == changed.content_hash()
    assert fresh_store.count_graph(graph.graph_id) == (graph.n_nodes, graph.n_edges)


def test_feature_identity_links_graphs(fresh_store: CircuitStore):
    bee = load_graph(bundled("bee-insect-clt.json.gz"))
    nobel = load_graph(bundled("nobel-clt.json.gz"))
    for graph in (bee, nobel):
        fresh_store.write_graph(graph)

    def features(graph: CircuitGraph) -> set[tuple[int, int]]:
        rows = graph.nodes[graph.nodes["kind"] == "feature"]
        return set(zip(rows["layer"].astype(int), rows["feature"].astype(int)))

    shared = fresh_store.query(
        "MATCH (:Node {graph_id: $a})-[:INSTANCE_OF]->(f:Feature)<-[:INSTANCE_OF]-"
        "(:Node {graph_id: $b}) RETURN DISTINCT f.layer AS layer, f.feature AS feature",
        {"a": bee.graph_id, "b": nobel.graph_id},
    )
    assert {(r["layer"], r["feature"]) for r in shared} == features(bee) & features(nobel)
    total = fresh_store.query("MATCH (f:Feature) RETURN count(f) AS c")[0]["c"]
    assert total == len(features(bee) | features(nobel))


def test_failed_write_leaves_nothing(fresh_store: CircuitStore, monkeypatch):
    graph = load_graph(bundled("bee-insect-clt.json.gz"))
    paths = ["bulk", "bolt"] if fresh_store.has_bulk_path else ["bolt"]
    import circuit_atlas.store.bulk_json as bulk_json
    import circuit_atlas.store.writer as writer

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    # fails while edges are written: after the nodes, on each path
    for path, module, name in [
        ("bulk", bulk_json, "edge_json_rows"),
        ("bolt", writer, "edge_property_rows"),
    ]:
        if path not in paths:
            continue
        with monkeypatch.context() as patched:
            patched.setattr(module, name, explode)
            with pytest.raises(RuntimeError, match="disk full"):
                fresh_store.write_graph(graph, force_bolt=path == "bolt")
        assert fresh_store.list_graphs().empty
        assert (
            fresh_store.query("MATCH (n) WHERE n:Node OR n:Graph RETURN count(n) AS c")[0]["c"] == 0
        )
        assert not list(fresh_store.artifact_dir.glob("*.npz"))


def test_delete_and_list_filters(fresh_store: CircuitStore):
    for name in ("bee-insect-clt.json.gz", "gpt2-ioi-eap-ig.json.gz"):
        fresh_store.write_graph(load_graph(bundled(name)))
    listed = fresh_store.list_graphs(model="gemma-2-2b")
    assert listed["graph_id"].tolist() == ["abeeisatypeof-1759386939498"]
    assert fresh_store.list_graphs(method="eap-ig")["graph_id"].tolist() == ["gpt2-ioi-eap-ig"]
    fresh_store.delete_graph("gpt2-ioi-eap-ig")
    assert fresh_store.count_graph("gpt2-ioi-eap-ig") == (0, 0)
    with pytest.raises(GraphNotFound):
        fresh_store.delete_graph("gpt2-ioi-eap-ig")
    with pytest.raises(GraphNotFound):
        fresh_store.read_graph("no-such-graph")


@pytest.mark.backends("neo4j")  # Neo4j-only: the index is its own (see store/schema.py)
def test_per_graph_node_lookups_seek_an_index_on_neo4j(fresh_store: CircuitStore):
    """Reads and batched deletes of one graph must not scan every graph's nodes: Neo4j seeks
    a composite index only when all its properties are constrained."""

    def operators(plan: dict | None) -> list[str]:
        assert plan is not None
        return [plan["operatorType"].split("@")[0]] + [
            name for child in plan.get("children", []) for name in operators(child)
        ]

    with fresh_store.driver.session(database=fresh_store.database) as session:
        session.run("CALL db.awaitIndexes(60)").consume()
        for cypher in (
            "MATCH (n:Node {graph_id: $gid}) RETURN properties(n) AS p",
            "MATCH (n:Node {graph_id: $gid}) WITH n LIMIT 5000 DETACH DELETE n",
        ):
            plan = session.run(f"EXPLAIN {cypher}", gid="g").consume().plan
            assert "NodeIndexSeek" in operators(plan), (cypher, operators(plan))


@pytest.mark.parametrize(
    "query",
    [
        "CREATE (n:Node {graph_id: 'x'})",
        "MATCH (n) DETACH DELETE n",
        "MATCH (g:Graph) SET g.status = 'gone'",
        "MERGE (x:Thing) RETURN x",
        "MATCH (g:Graph) REMOVE g.model",
    ],
)
def test_user_cypher_is_read_only_by_default(fresh_store: CircuitStore, query: str):
    fresh_store.write_graph(load_graph(bundled("bee-insect-clt.json.gz")))
    before = fresh_store.query("MATCH (n) RETURN count(n) AS c")[0]["c"]
    with pytest.raises(CypherError, match="read-only|write"):
        fresh_store.query(query)
    assert fresh_store.query("MATCH (n) RETURN count(n) AS c")[0]["c"] == before
    assert fresh_store.list_graphs()["graph_id"].tolist() == ["abeeisatypeof-1759386939498"]


def test_words_inside_strings_and_properties_are_not_clauses(fresh_store: CircuitStore):
    rows = fresh_store.query("RETURN 'CREATE' AS word, $set AS value", {"set": 3})
    assert rows == [{"word": "CREATE", "value": 3}]


def test_write_cypher_runs_when_asked(fresh_store: CircuitStore):
    fresh_store.query("CREATE (:Note {text: $text})", {"text": "hi"}, write=True)
    assert fresh_store.query("MATCH (n:Note) RETURN n.text AS t") == [{"t": "hi"}]


def test_values_travel_as_parameters(fresh_store: CircuitStore):
    hostile = "x'}) DETACH DELETE n //"
    rows = fresh_store.query("RETURN $v AS v", {"v": hostile})
    assert rows == [{"v": hostile}]


def test_cypher_syntax_error_is_one_line(fresh_store: CircuitStore):
    with pytest.raises(CypherError) as info:
        fresh_store.query("MATCH (n RETURN n")
    assert "\n" not in str(info.value)


def test_query_df(fresh_store: CircuitStore):
    fresh_store.write_graph(load_graph(bundled("bee-insect-clt.json.gz")))
    frame = fresh_store.query_df(
        "MATCH (n:Node) RETURN n.kind AS kind, count(*) AS n ORDER BY kind"
    )
    assert isinstance(frame, pd.DataFrame)
    assert frame.set_index("kind")["n"].to_dict() == {
        "embedding": 7,
        "error": 40,
        "feature": 209,
        "logit": 10,
    }


# --------------------------------------------------------------------------- timeouts
def running(store: CircuitStore, text: str) -> list[str]:
    """Ids of the server's transactions running ``text`` (auto-commit, as the store asks)."""
    with store.driver.session(database=store.database) as session:
        return matching_transactions([r.data() for r in session.run(SHOW)], text, None)


def wait_until_gone(store: CircuitStore, text: str, within_s: float = 30.0) -> float:
    started = time.perf_counter()
    while running(store, text) and time.perf_counter() - started < within_s:
        time.sleep(0.1)
    return time.perf_counter() - started


def test_a_slow_query_times_out_is_stopped_and_the_store_still_answers(fresh_store):
    """ArcadeDB ignores the Bolt transaction timeout; the store's own deadline must not."""
    started = time.perf_counter()
    with pytest.raises(QueryTimeout, match=r"exceeded the 1 s time limit .*--timeout SECONDS"):
        fresh_store.query(SLOW, timeout_s=1)
    # generous: the deadline is 1 s, the rest is stopping it on a shared, loaded machine
    assert time.perf_counter() - started < 30
    assert fresh_store.query("RETURN 1 AS x", timeout_s=5) == [{"x": 1}]
    assert wait_until_gone(fresh_store, SLOW, within_s=30) < 30  # terminated, not left running


def test_a_timed_out_query_says_stopped_whichever_side_stops_it(fresh_store, monkeypatch):
    """Neo4j stops the query itself at the same timeout, and may win the race with the caller's
    deadline (the query is then gone from SHOW TRANSACTIONS, or the worker raises Neo4j's own
    timeout error): the message must not depend on who was first (a CI run said "abandoned")."""
    if fresh_store.backend != "neo4j":
        skip_test("only Neo4j enforces the transaction timeout itself")
    monkeypatch.setattr(CircuitStore, "_terminate_on_server", lambda *_args: False)
    slower = SLOW.replace("20000000", "2000000000")  # Neo4j runs SLOW itself in under 1 s
    for _ in range(3):
        with pytest.raises(QueryTimeout) as caught:
            fresh_store.query(slower, timeout_s=1)
        assert str(caught.value).startswith("query exceeded the 1 s time limit and was stopped;")


def test_a_timed_out_write_never_commits(fresh_store: CircuitStore):
    write = SLOW.replace("RETURN count(*) AS c", "WITH count(*) AS c CREATE (:Marker {c: c})")
    with pytest.raises(QueryTimeout):
        fresh_store.query(write, write=True, timeout_s=1)
    wait_until_gone(fresh_store, write)
    assert fresh_store.query("MATCH (m:Marker) RETURN count(m) AS n") == [{"n": 0}]


def test_timeout_must_be_positive(fresh_store: CircuitStore):
    with pytest.raises(CypherError, match="positive number of seconds"):
        fresh_store.query("RETURN 1", timeout_s=0)


def claim_outcome(claimed: list[bool]) -> list[bool]:
    """What the released worker's ``claim()`` returned, once it has run (at most ~5 s)."""
    for _ in range(500):
        if claimed:
            break
        time.sleep(0.01)
    return claimed


def test_deadline_abandoned_work_can_no_longer_claim_its_commit():
    release, claimed = threading.Event(), []

    def work(claim):
        release.wait(5)
        claimed.append(claim())
        return "rows"

    with pytest.raises(QueryTimeout):
        call_with_deadline(work, 0.05, lambda: QueryTimeout("late"))
    release.set()
    assert claim_outcome(claimed) == [False]


def test_deadline_interrupted_work_can_no_longer_claim_its_commit(monkeypatch):
    """Ctrl-C while waiting: a write still running must not commit after the caller left."""
    release, claimed = threading.Event(), []

    def work(claim):
        release.wait(5)
        claimed.append(claim())
        return "rows"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("circuit_atlas.store.deadline.wait", interrupted)
    with pytest.raises(KeyboardInterrupt):
        call_with_deadline(work, None, lambda: QueryTimeout("late"))
    release.set()
    assert claim_outcome(claimed) == [False]


def test_deadline_waits_for_a_commit_claimed_before_it():
    def work(claim):
        assert claim()
        time.sleep(0.3)  # committing past the deadline
        return "committed"

    assert call_with_deadline(work, 0.05, lambda: QueryTimeout("late")) == "committed"


def test_deadline_passes_errors_on_and_waits_for_ever_without_a_limit():
    def fail(claim):
        raise CypherError("bad")

    with pytest.raises(CypherError, match="bad"):
        call_with_deadline(fail, 5, lambda: QueryTimeout("late"))

    def slow(claim):
        time.sleep(0.5)  # several polling slices
        return claim()

    assert call_with_deadline(slow, None, RuntimeError) is True


def test_abandoned_queries_are_recognised_by_text_and_user():
    long = "RETURN 1 AS x // " + "x" * 2000
    rows = [
        {"transactionId": "q1", "currentQuery": SLOW, "username": "root"},
        {"transactionId": "q2", "currentQuery": SHOW, "username": "root"},
        {"transactionId": "q3", "currentQuery": SLOW, "username": "alice"},
        {"transactionId": "q4", "currentQuery": long[:1024] + "...", "username": "root"},
        {"transactionId": "q5", "currentQuery": None, "username": "root"},
    ]
    assert matching_transactions(rows, SLOW, "root") == ["q1"]
    assert matching_transactions(rows, SLOW, None) == ["q1", "q3"]
    assert matching_transactions(rows, long, "root") == ["q4"]


def relayed_settings(server, relay: CuttingRelay, tmp_path) -> ConnectionSettings:
    """Settings for the session server, reached through ``relay``."""
    endpoint = server.endpoint
    return ConnectionSettings(
        uri=f"bolt://127.0.0.1:{relay.port}",
        user=endpoint.user,
        password=endpoint.password,
        database=endpoint.database,
        artifact_dir=tmp_path / "artifacts",
        read_user=endpoint.reader_user,
        read_password=endpoint.reader_password,
    )


def cutting_relay(server) -> CuttingRelay:
    return CuttingRelay(("127.0.0.1", int(server.endpoint.uri.rsplit(":", 1)[1])), b"cut-here")


def test_a_connection_dropped_mid_query_by_a_live_server_is_not_called_unreachable(
    server, tmp_path
):
    """ArcadeDB drops the connection of a query that exhausts its heap but stays up; the
    user must hear "ran out of memory, narrow it", not "is the server running?"."""
    relay = cutting_relay(server)
    try:
        with CircuitStore.open(relayed_settings(server, relay, tmp_path)) as store:
            with pytest.raises(CypherError, match=r"dropped the connection .* still answers: "):
                store.query("RETURN $tag AS tag", {"tag": "cut-here"}, timeout_s=30)
            assert relay.cuts == 1
            assert store.query("RETURN 1 AS x", timeout_s=30) == [{"x": 1}]
    finally:
        relay.close()


def test_a_connection_dropped_by_a_server_that_went_away_says_so(server, tmp_path):
    relay = cutting_relay(server)
    with CircuitStore.open(relayed_settings(server, relay, tmp_path)) as store:
        relay.close()  # no new connection gets through any more
        with pytest.raises(ConnectionFailed, match="is it running"):
            store.query("RETURN $tag AS tag", {"tag": "cut-here"}, timeout_s=30)


@pytest.mark.backends("arcadedb")
def test_bulk_json_rows_carry_every_channel_and_weight_exactly(fresh_store, monkeypatch):
    """The bulk path formats its own JSON rows (store/bulk_json.py): quotes, backslashes,
    newlines and non-ASCII channels, and full-precision float64 weights, come back unchanged."""
    import circuit_atlas.store.bulk_json as bulk_json

    graph = load_graph(bundled("gpt2-ioi-eap-ig.json.gz"))
    edges = graph.edges.drop(columns=["in_graph"])  # an extra column takes the package's path
    tricky = np.array(["q", 'k"\\', "v\n", "é→", ""], dtype=object)
    edges["channel"] = tricky[np.arange(len(edges)) % len(tricky)]
    edges["weight"] = edges["weight"] * np.pi / 7
    plain = CircuitGraph(graph.nodes, edges, graph.metadata.model_copy(update={"graph_id": "json"}))
    formatted = []
    real = bulk_json.edge_json_rows
    monkeypatch.setattr(bulk_json, "edge_json_rows", lambda *a: formatted.append(1) or real(*a))
    assert fresh_store.write_graph(plain).path == "bulk"
    assert formatted  # the rows really went through our JSON
    back = fresh_store.read_graph("json")
    assert_same_graph(plain, back)
    assert back.content_hash() == plain.content_hash()


def test_edge_json_rows_are_the_json_of_the_values():
    import json

    from circuit_atlas.store.bulk_json import edge_json_rows, rows_json

    weights = [0.1, -1e-300, 2.5e20, 1 / 3]
    channels = ["", 'a"b\\', "é\n", "q"]
    rows = edge_json_rows(["#1:0"] * 4, ["#1:1"] * 4, weights, channels)
    parsed = [json.loads(row) for row in rows]
    assert [p["weight"] for p in parsed] == weights  # exact, not rounded
    assert [p.get("channel", "") for p in parsed] == channels
    assert "channel" not in parsed[0]

    def carried(value):
        return rows_json([{"a": 1, "b": value}]) is not None

    safe = [[0.5, 1e300], "x", "é", 3, -(2**63), True, None, 0.25]
    assert all(carried(v) for v in safe)
    text = rows_json([{"b": v} for v in safe])
    assert text is not None and json.loads(text) == [{"b": v} for v in safe]
    # what JSON would change or cannot carry: the package's per-value path takes those rows
    unsafe = [[0.5, float("inf")], [1.0, float("nan")], float("nan"), -float("inf"), [1, 2],
              2**63, "\ud800", b"x", (1.0,)]  # fmt: skip
    assert not any(carried(v) for v in unsafe)
    assert rows_json([{1: "a"}]) is None  # ty: ignore[invalid-argument-type]


def test_a_graph_of_huge_labels_is_sent_in_messages_the_server_accepts(fresh_store):
    """A Bolt server drops a message over 16 MiB and the client then waits for ever: the Bolt
    path cuts batches by size, so 24 labels of almost 1 MiB (24 MiB of nodes) still land."""
    from circuit_atlas.store.writer import MAX_MESSAGE_BYTES, approx_bytes, sized_batches

    graph = load_graph(bundled("bee-insect-clt.json.gz"))
    nodes = graph.nodes.copy()
    nodes["label"] = nodes["label"].astype(object)
    for row, letter in zip(range(24), "abcdefghijklmnopqrstuvwxyz"):
        nodes.loc[row, "label"] = letter * 1_000_000
    big = CircuitGraph(nodes, graph.edges, graph.metadata)
    from circuit_atlas.store.rows import node_property_rows

    batches = list(sized_batches(node_property_rows(big)))
    assert len(batches) >= 3
    assert all(sum(approx_bytes(r) for r in b) <= MAX_MESSAGE_BYTES for b in batches)
    outcome: list[object] = []
    worker = threading.Thread(
        target=lambda: outcome.append(fresh_store.write_graph(big, force_bolt=True)), daemon=True
    )
    worker.start()
    worker.join(timeout=300)
    assert outcome, "the write did not finish (a message the server dropped?)"
    assert fresh_store.count_graph(big.graph_id) == (big.n_nodes, big.n_edges)
    labels = fresh_store.query(
        "MATCH (n:Node {graph_id: $g}) WHERE size(n.label) > 100 RETURN count(n) AS c",
        {"g": big.graph_id},
    )
    assert labels == [{"c": 24}]


@pytest.mark.backends("neo4j")
def test_neo4j_database_defaults_to_the_servers_own_and_a_wrong_name_is_explained(
    fresh_store, neo4j_connection, tmp_path
):
    """Neo4j Community has one database, ``neo4j``: with a URI and no database the store uses
    the server's default (it used to ask for ``circuits`` and fail with "query failed")."""
    from helpers.servers import neo4j_settings

    settings = neo4j_settings(neo4j_connection, tmp_path / "a")
    unnamed = ConnectionSettings(
        uri=settings.uri, user=settings.user, password=settings.password, artifact_dir=tmp_path
    )
    with CircuitStore.open(unnamed) as store:
        assert store.database is None
        graph = load_graph(bundled("bee-insect-clt.json.gz"))
        assert store.write_graph(graph).status == "created"
    assert fresh_store.list_graphs()["graph_id"].tolist() == [graph.graph_id]
    wrong = ConnectionSettings(
        uri=settings.uri,
        user=settings.user,
        password=settings.password,
        database="circuits",
        artifact_dir=tmp_path,
    )
    with pytest.raises(StoreError, match=r"no such database .*only 'neo4j'"):
        CircuitStore.open(wrong)


def test_a_derived_graph_is_linked_before_it_turns_ready(fresh_store: CircuitStore, monkeypatch):
    """Corpus queries leave derived graphs out by their DERIVED_FROM link: a child that turned
    ready before it was linked would count, for a moment, as an ordinary graph."""
    parent = load_graph(bundled("bee-insect-clt.json.gz"))
    fresh_store.write_graph(parent)
    child = load_graph(bundled("nobel-clt.json.gz"), graph_id="child")
    listed_while_linking: list[list[str]] = []
    real_link = fresh_store.link_derived

    def spy(child_id, parent_id, props, run=None):
        listed_while_linking.append(fresh_store.list_graphs()["graph_id"].tolist())
        real_link(child_id, parent_id, props, run=run)

    monkeypatch.setattr(fresh_store, "link_derived", spy)
    assert fresh_store.write_derived(child, {parent.graph_id: {"operation": "t"}}).status == (
        "created"
    )
    assert listed_while_linking == [[parent.graph_id]]
    links = fresh_store.query(
        "MATCH (:Graph {graph_id: 'child'})-[r:DERIVED_FROM]->(p:Graph) RETURN p.graph_id AS p"
    )
    assert links == [{"p": parent.graph_id}]
    assert sorted(fresh_store.list_graphs()["graph_id"]) == sorted([parent.graph_id, "child"])
