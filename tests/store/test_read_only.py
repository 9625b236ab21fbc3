"""Read-only user Cypher holds by construction: the server refuses writes from the read-only
principal whatever the spelling, and the guard refuses unknown procedures and transaction
control by normalised name. Every bypass an attacker review found is here, against the real
server, with the stored data and the schema checked unchanged afterwards."""

from __future__ import annotations

import contextlib
import itertools
import random

import pytest

import circuit_atlas.store.circuit_store as circuit_store
from circuit_atlas.errors import CypherError
from circuit_atlas.ingest import load_graph
from circuit_atlas.store import CircuitStore, ConnectionSettings
from circuit_atlas.store.cypher_guard import (
    assert_read_only,
    called_procedures,
    normalise_procedure_name,
)

from helpers.cli import run_cli
from helpers.data import bundled

BYPASSES = [
    "CALL `do.when`(true, 'MATCH (n:Node) DETACH DELETE n', '', {})",
    "CALL `do`.`when`(true, 'MATCH (g:Graph) SET g.status = \"x\"', '', {}) YIELD value "
    "RETURN value",
    "CALL merge.node(['Evil'], {x: 1}) YIELD node RETURN node",
    "CALL `merge.relationship`(null, 'EVIL', {}, {}, null) YIELD rel RETURN rel",
    "CALL refactor.mergeNodes([], {})",
    "CALL algo.pageRank('Node', 'EDGE', {write: true})",
    "CALL `ALGO`.`labelPropagation`('Node', 'EDGE', {write: true})",
    "MATCH (n:Node) WITH n LIMIT 1 CALL do.when(true, 'MATCH (m) DETACH DELETE m', '', {}) "
    "YIELD value RETURN value",
    "COMMIT",
    "MATCH (n) RETURN n; COMMIT",
    "TERMINATE TRANSACTION 'circuits-transaction-1'",
    "TERMINATE TRANSACTIONS 'x'",
    "ROLLBACK",
    "BEGIN",
]
# Writes the server itself must refuse when the guard is out of the way (the principal).
SERVER_MUST_REFUSE = [
    "CREATE (n:Evil {x: 1})",
    "MATCH (n:Node) WITH n LIMIT 1 SET n.activation = -1",
    "MATCH (n:Node) WITH n LIMIT 1 DETACH DELETE n",
    "MERGE (n:Node2 {a: 1}) RETURN n",
    "MATCH (g:Graph) SET g.status = 'loading'",
    "MATCH (a:Node), (b:Node) WITH a, b LIMIT 1 CREATE (a)-[:EVIL]->(b)",
    "CALL `do.when`(true, 'MATCH (n:Node) DETACH DELETE n', '', {})",
    "CALL do.when(true, 'CREATE (:Evil2)', '', {})",
]

pytestmark = pytest.mark.backends("arcadedb", "neo4j")


def snapshot(store: CircuitStore) -> tuple:
    """What must not change: every node and relationship count, labels and types."""
    counts = store.query(
        "MATCH (n) OPTIONAL MATCH (n)-[r]->() RETURN count(DISTINCT n) AS n, count(r) AS r"
    )[0]
    labels = sorted(r["label"] for r in store.query("CALL db.labels() YIELD label RETURN label"))
    types = sorted(
        r["t"]
        for r in store.query(
            "CALL db.relationshipTypes() YIELD relationshipType RETURN relationshipType AS t"
        )
    )
    status = store.query("MATCH (g:Graph) RETURN g.graph_id AS g, g.status AS s ORDER BY g")
    return counts["n"], counts["r"], labels, types, status


@pytest.fixture
def stored(fresh_store: CircuitStore) -> CircuitStore:
    fresh_store.write_graph(load_graph(bundled("bee-insect-clt.json.gz")))
    return fresh_store


@pytest.mark.parametrize("query", BYPASSES)
def test_each_reported_bypass_is_refused_and_changes_nothing(stored: CircuitStore, query: str):
    before = snapshot(stored)
    with pytest.raises(CypherError):
        stored.query(query)
    assert snapshot(stored) == before


def run_and_commit_as_reader(store: CircuitStore, query: str) -> None:
    """What a query could do if nothing but the server stood in its way: run it as the
    read-only principal and then try to *commit* it."""
    with store._session(write=False, as_reader=True) as session, session.begin_transaction() as tx:
        tx.run(query).consume()
        tx.commit()


# TERMINATE of a transaction that does not exist changes nothing, so the server has nothing to
# refuse; the guard refuses it (above).
@pytest.mark.parametrize(
    "query", SERVER_MUST_REFUSE + [q for q in BYPASSES if "TERMINATE" not in q]
)
def test_the_server_refuses_writes_of_the_read_only_principal(stored: CircuitStore, query: str):
    """With the guard out of the way and a commit attempted, the server alone keeps read-only
    read-only: it refuses, nothing is committed and no label or relationship type appears."""
    before = snapshot(stored)
    with pytest.raises(CypherError):
        run_and_commit_as_reader(stored, query)
    assert snapshot(stored) == before


@pytest.mark.parametrize("query", SERVER_MUST_REFUSE)
def test_query_without_the_guard_still_changes_nothing(
    stored: CircuitStore, query: str, monkeypatch
):
    monkeypatch.setattr(circuit_store, "assert_read_only", lambda cypher: None)
    before = snapshot(stored)
    with contextlib.suppress(CypherError):
        stored.query(query)
    assert snapshot(stored) == before


def test_read_only_queries_still_read(stored: CircuitStore):
    rows = stored.query("MATCH (g:Graph) RETURN g.graph_id AS gid")
    assert rows == [{"gid": "abeeisatypeof-1759386939498"}]
    assert stored.query("CALL db.labels() YIELD label RETURN count(label) AS c")[0]["c"] >= 2


def test_a_server_that_does_not_enforce_read_only_without_a_reader_is_refused(server, tmp_path):
    """ArcadeDB ignores READ access mode; with no read-only principal configured the store
    refuses read-only Cypher rather than pretend."""
    endpoint = server.endpoint
    settings = ConnectionSettings(
        uri=endpoint.uri,
        user=endpoint.user,
        password=endpoint.password,
        database=endpoint.database,
        artifact_dir=tmp_path / "a",
    )
    with CircuitStore.open(settings) as store:
        with pytest.raises(CypherError, match="does not enforce read-only.*READ_USER"):
            store.query("RETURN 1 AS x")
        assert store.query("RETURN 1 AS x", write=True) == [{"x": 1}]


def test_cli_cypher_bypass_is_refused(bolt_env):
    run_cli("ingest", str(bundled("bee-insect-clt.json.gz")), env=bolt_env, check=True)
    result = run_cli(
        "cypher", "CALL `do.when`(true, 'MATCH (n:Node) DETACH DELETE n', '', {})", env=bolt_env
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "error: procedure do.when may write; it runs only with --write"
    count = run_cli(
        "cypher", "MATCH (n:Node) RETURN count(n) AS c", "--format", "csv", env=bolt_env
    )
    assert int(count.stdout.split()[1]) > 0


# ---------------------------------------------------------------------- the guard, generated
WRITE_PROCEDURES = [
    "do.when",
    "merge.node",
    "merge.relationship",
    "refactor.mergeNodes",
    "algo.pageRank",
    "create.node",
    "db.createLabel",
    "dbms.security.createUser",
    "apoc.periodic.iterate",
    "apoc.cypher.doIt",
]


def spellings(name: str, rng: random.Random, n: int = 12) -> list[str]:
    """Ways to write one procedure name that Cypher reads as the same name."""
    parts = name.split(".")
    gaps = ["", " ", "\n", " /* c */ ", "\t"]
    found = {
        name,
        f"`{name}`",
        ".".join(f"`{p}`" for p in parts),
        name.upper(),
        " . ".join(parts),
    }
    while len(found) < n:
        pieces = []
        for part in parts:
            part = "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in part)
            pieces.append(f"`{part}`" if rng.random() < 0.5 else part)
        found.add(f"{rng.choice(gaps)}.{rng.choice(gaps)}".join(pieces))
    return sorted(found)


@pytest.mark.parametrize("name", WRITE_PROCEDURES)
def test_every_spelling_of_a_write_procedure_is_refused(name: str):
    rng = random.Random(name)
    for spelling, gap, tail in itertools.product(
        spellings(name, rng), ["", " ", "\n// c\n", "/**/"], ["()", "(1, 2)", " YIELD x RETURN x"]
    ):
        query = f"MATCH (n) WITH n LIMIT 1 CALL{gap if gap.strip() else ' '}{spelling}{tail}"
        with pytest.raises(CypherError, match=r"write|cannot be read"):
            assert_read_only(query)
        names = called_procedures(query)
        assert names in ([name.lower()], [None]), (query, names)


@pytest.mark.parametrize("name", ["db.indexes", "db.constraints"])
def test_procedures_neo4j_5_removed_are_off_the_allow_list(name: str):
    """Neo4j 5 dropped them (SHOW INDEXES replaces them): allowing them would only trade the
    guard's clear message for the server's "no procedure with the name"."""
    with pytest.raises(CypherError, match=f"procedure {name} may write"):
        assert_read_only(f"CALL {name}()")


@pytest.mark.parametrize("spelling", ["db.labels", "`db`.`labels`", "DB . LABELS", "`db.labels`"])
def test_read_procedures_pass_in_any_spelling(spelling: str):
    assert_read_only(f"CALL {spelling}() YIELD label RETURN label")


@pytest.mark.parametrize(
    "query",
    [
        "MATCH (n) CALL { WITH n RETURN n.x AS x } RETURN x",
        "MATCH (n) CALL (n) { RETURN n.x AS x } RETURN x",
        "MATCH (start:Node) RETURN start.pos AS pos",
        "RETURN 'CALL do.when(1)' AS text // CALL merge.node()",
        "MATCH (n) WHERE n.label STARTS WITH 'COMMIT' RETURN n",
        "MATCH (n) RETURN n;",
    ],
)
def test_reads_that_look_like_writes_pass(query: str):
    assert_read_only(query)


@pytest.mark.parametrize(
    "query",
    [
        "MATCH (n) CALL { WITH n DETACH DELETE n } RETURN 1",
        "MATCH (n) CALL (n) { CALL do.when(true, 'x', '', {}) YIELD value RETURN value } RETURN 1",
        "START DATABASE neo4j",
        "STOP DATABASE circuits",
        "USE system SHOW USERS",
        "RETURN 1; RETURN 2",
        "CALL",
        "CALL 1",
    ],
)
def test_hidden_writes_and_control_are_refused(query: str):
    with pytest.raises(CypherError):
        assert_read_only(query)


def test_procedure_names_normalise():
    assert normalise_procedure_name("`Do` . `When`") == "do.when"
    assert normalise_procedure_name("`a``b`.c") == "a`b.c"
