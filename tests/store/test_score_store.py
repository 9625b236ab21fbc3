"""Scores of stored graphs: written back, idempotent, all-or-nothing, and the CLI around them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from circuit_atlas.analysis.scores.attribution_matrix import AttributionMatrix
from circuit_atlas.analysis.scores.pruning import prune
from circuit_atlas.analysis.scores.stored import (
    Supernode,
    prune_stored_graph,
    saved_subgraph,
    score_stored_graph,
)
from circuit_atlas.analysis.scores.table import resolve_pinned, score_graph
from circuit_atlas.errors import GraphNotFound, InvalidGraphError
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest import load_graph
from circuit_atlas.store import CircuitStore

from helpers.cli import cypher_json, error_lines, run_cli
from helpers.data import SHARED_GRAPHS, bundled, needs_shared
from helpers.graphs import nine_node_graph, ten_node_graph

pytestmark = pytest.mark.backends("arcadedb", "neo4j")

SCORE_PROPERTIES = "MATCH (g:Graph {graph_id: $gid}) RETURN properties(g) AS p"


def graph_props(store: CircuitStore, graph_id: str) -> dict:
    return store.query(SCORE_PROPERTIES, {"gid": graph_id})[0]["p"]


def counts(store: CircuitStore) -> tuple[int, int]:
    subgraphs = store.query("MATCH (s:Subgraph) RETURN count(s) AS c")[0]["c"]
    members = store.query("MATCH ()-[r:PINNED_IN]->() RETURN count(r) AS c")[0]["c"]
    return subgraphs, members


def test_scores_are_written_back_and_rescoring_changes_nothing(fresh_store: CircuitStore):
    graph = ten_node_graph()
    fresh_store.write_graph(graph)
    result = score_stored_graph(fresh_store, "ten", pinned=["Fa", "feature:3:2:4:"], pin_top=[1])
    assert result.source == "artifact"
    props = graph_props(fresh_store, "ten")
    assert props["replacement_score"] == pytest.approx(13 / 14, abs=1e-12)
    assert props["completeness_score"] == pytest.approx(38 / 39, abs=1e-12)
    assert props["score_node_threshold"] == 0.8 and props["score_edge_threshold"] == 0.98
    stored = {s["props"]["name"]: s for s in fresh_store.subgraphs("ten")}
    assert set(stored) == {"pinned", "top 1"}
    assert stored["pinned"]["members"] == ["feature:1:0:2:", "feature:3:2:4:"]
    report_row = result.report.row("subgraph", "pinned")
    assert stored["pinned"]["props"]["replacement_score"] == report_row.replacement
    assert stored["top 1"]["members"] == ["feature:3:2:4:"]  # Fc carries all feature influence

    before = counts(fresh_store), props
    score_stored_graph(fresh_store, "ten", pinned=["Fa", "feature:3:2:4:"], pin_top=[1])
    assert (counts(fresh_store), graph_props(fresh_store, "ten")) == before


SAVED_VIEW = (
    SHARED_GRAPHS / "neuronpedia" / "demos" / ("gemma-small-big-en_2025-11-13T10-16-02-770Z.json")
)


@needs_shared()
def test_the_subgraph_saved_in_a_neuronpedia_file_is_scored_with_its_supernodes(
    fresh_store: CircuitStore,
):
    """The file's qParams pin 17 nodes (13 features) in 5 supernodes: ``--saved`` scores exactly
    that subgraph and stores it as :Subgraph 'saved', the supernodes alongside."""
    graph = load_graph(SAVED_VIEW, graph_id="big")
    pinned, supernodes = saved_subgraph(graph)
    assert len(pinned) == 17 and len(supernodes) == 5
    fresh_store.write_graph(graph)
    result = score_stored_graph(fresh_store, "big", saved=True)
    explicit = score_stored_graph(fresh_store, "big", pinned=pinned, write=False)
    row, same = result.report.row("subgraph", "saved"), explicit.report.row("subgraph", "pinned")
    assert (row.replacement, row.completeness) == (same.replacement, same.completeness)
    stored = {s["name"]: s for s in fresh_store.subgraphs("big")}
    assert len(stored["saved"]["members"]) == 17  # every pinned node: 13 features, 4 others
    assert stored["saved"]["props"]["n_pinned"] == 13  # the scores count the features
    keys = graph.keys()
    as_keys = [
        {"label": g[0], "members": sorted(keys[r].encode() for r in resolve_pinned(graph, g[1:]))}
        for g in supernodes
    ]
    assert stored["saved"]["supernodes"] == as_keys  # :Supernode nodes, in the file's order
    assert supernodes[0][0] == 'Output "big" or "large"'
    assert fresh_store.query("MATCH (p:Supernode) RETURN count(p) AS c")[0]["c"] == 5
    with pytest.raises(InvalidGraphError, match="has no saved subgraph"):
        fresh_store.write_graph(ten_node_graph())
        score_stored_graph(fresh_store, "ten", saved=True)


def supernode_counts(store: CircuitStore) -> tuple[int, int]:
    groups = store.query("MATCH (p:Supernode) RETURN count(p) AS c")[0]["c"]
    links = store.query("MATCH ()-[r:IN_SUPERNODE]->() RETURN count(r) AS c")[0]["c"]
    return groups, links


def test_named_subgraphs_live_side_by_side_and_a_name_is_replaced(fresh_store: CircuitStore):
    fresh_store.write_graph(ten_node_graph())
    group = Supernode("a and c", ["Fa", "Fc"])
    score_stored_graph(fresh_store, "ten", pinned=["Fa", "Fc"], name="ac", supernodes=[group])
    score_stored_graph(fresh_store, "ten", pinned=["Fb"], name="b")
    stored = {s["name"]: s for s in fresh_store.subgraphs("ten")}
    assert stored["ac"]["members"] == ["feature:1:0:2:", "feature:3:2:4:"]
    assert stored["ac"]["supernodes"] == [
        {"label": "a and c", "members": ["feature:1:0:2:", "feature:3:2:4:"]}
    ]
    assert stored["b"]["members"] == ["feature:2:1:3:"] and stored["b"]["supernodes"] == []
    assert supernode_counts(fresh_store) == (1, 2)
    score_stored_graph(fresh_store, "ten", pinned=["Fz"], name="ac")  # the name again: replaced
    stored = {s["name"]: s for s in fresh_store.subgraphs("ten")}
    assert set(stored) == {"ac", "b"} and stored["ac"]["members"] == ["feature:0:0:1:"]
    assert supernode_counts(fresh_store) == (0, 0)
    with pytest.raises(GraphNotFound, match="no subgraph 'gone'.*'ac', 'b'"):
        fresh_store.subgraph("ten", "gone")
    fresh_store.delete_graph("ten")
    assert counts(fresh_store) == (0, 0) and supernode_counts(fresh_store) == (0, 0)


def test_the_built_in_subgraph_names_are_reserved(fresh_store: CircuitStore):
    fresh_store.write_graph(ten_node_graph())
    for name in ("saved", "top 5"):
        with pytest.raises(InvalidGraphError, match="is reserved"):
            score_stored_graph(fresh_store, "ten", pinned=["Fa"], name=name)


def test_a_supernode_of_unpinned_nodes_writes_nothing(fresh_store: CircuitStore):
    fresh_store.write_graph(ten_node_graph())
    group = Supernode("loose", ["Fa", "Fb"])
    with pytest.raises(InvalidGraphError, match="supernode 'loose' groups node.*Fb.*not pinned"):
        score_stored_graph(fresh_store, "ten", pinned=["Fa"], supernodes=[group])
    assert counts(fresh_store) == (0, 0) and supernode_counts(fresh_store) == (0, 0)


def test_node_annotations_support_cypher_by_influence(fresh_store: CircuitStore):
    fresh_store.write_graph(nine_node_graph())
    score_stored_graph(fresh_store, "nine")
    rows = fresh_store.query(
        "MATCH (n:Node {graph_id: 'nine'}) WHERE n.kind = 'feature' "
        "RETURN n.label AS label, n.score_influence AS influence ORDER BY influence DESC"
    )
    assert [(r["label"], round(r["influence"], 12)) for r in rows] == [
        ("F2", 0.5),
        ("F1", 0.25),
        ("F0", 0.0),
    ]


@pytest.mark.parametrize(
    "pinned, problem",
    [(["feature:9:9:9:"], "not in graph"), (["no-such-node"], "not in graph")],
)
def test_unknown_pinned_node_writes_nothing(fresh_store: CircuitStore, pinned, problem):
    fresh_store.write_graph(ten_node_graph())
    with pytest.raises(InvalidGraphError, match=problem):
        score_stored_graph(fresh_store, "ten", pinned=pinned)
    assert "replacement_score" not in graph_props(fresh_store, "ten")
    assert counts(fresh_store) == (0, 0)


def test_graph_without_logits_writes_nothing(fresh_store: CircuitStore):
    graph = load_graph(bundled("gpt2-ioi-eap-ig.json.gz"))  # a component graph: no logit nodes
    fresh_store.write_graph(graph)
    with pytest.raises(InvalidGraphError, match="no logit nodes"):
        score_stored_graph(fresh_store, graph.graph_id, pin_top=[3])
    assert "replacement_score" not in graph_props(fresh_store, graph.graph_id)


def test_all_zero_feature_row_writes_nothing(fresh_store: CircuitStore):
    graph = nine_node_graph()
    broken = CircuitGraph(graph.nodes, graph.edges[graph.edges["target"] != 4], graph.metadata)
    fresh_store.write_graph(broken)
    with pytest.raises(InvalidGraphError, match="all-zero rows"):
        score_stored_graph(fresh_store, "nine")
    assert "replacement_score" not in graph_props(fresh_store, "nine")


def test_unknown_graph(fresh_store: CircuitStore):
    with pytest.raises(GraphNotFound):
        score_stored_graph(fresh_store, "absent")


def test_database_copy_scores_like_the_artifact(fresh_store: CircuitStore, tmp_path: Path):
    graph = load_graph(bundled("bee-insect-clt.json.gz"))
    fresh_store.write_graph(graph)
    from_artifact = score_stored_graph(fresh_store, graph.graph_id, pin_top=[5], write=False)
    Path(fresh_store.graph_info(graph.graph_id)["artifact_path"]).unlink()
    from_database = score_stored_graph(fresh_store, graph.graph_id, pin_top=[5], write=False)
    assert from_database.source == "database"
    for a, b in zip(from_artifact.report.rows, from_database.report.rows):
        assert a.replacement == pytest.approx(b.replacement, abs=1e-6)
        assert a.completeness == pytest.approx(b.completeness, abs=1e-6)


def test_replacing_a_graph_removes_its_stale_subgraphs(fresh_store: CircuitStore):
    fresh_store.write_graph(ten_node_graph())
    score_stored_graph(fresh_store, "ten", pin_top=[2])
    changed = ten_node_graph()
    changed.edges.loc[0, "weight"] = 3.0
    fresh_store.write_graph(
        CircuitGraph(changed.nodes, changed.edges, changed.metadata), replace=True
    )
    assert counts(fresh_store) == (0, 0)
    assert "replacement_score" not in graph_props(fresh_store, "ten")


def test_prune_stores_a_linked_graph_idempotently(fresh_store: CircuitStore):
    graph = load_graph(bundled("dollar.json.gz"))
    fresh_store.write_graph(graph)
    result, child = prune_stored_graph(fresh_store, graph.graph_id, 0.6, 0.9)
    expected = prune(AttributionMatrix.from_graph(graph), 0.6, 0.9)
    assert result.status == "created"
    assert child.n_nodes == expected.node_mask.sum() == fresh_store.count_graph(child.graph_id)[0]
    assert child.n_edges == fresh_store.count_graph(child.graph_id)[1]
    assert child.metadata.extra["parent_graph_id"] == graph.graph_id
    link = fresh_store.query(
        "MATCH (c:Graph)-[r:DERIVED_FROM]->(p:Graph) RETURN c.graph_id AS c, p.graph_id AS p, "
        "r.operation AS op, r.node_threshold AS tn, r.edge_threshold AS te"
    )
    assert link == [{"c": child.graph_id, "p": graph.graph_id, "op": "prune", "tn": 0.6, "te": 0.9}]
    again, _ = prune_stored_graph(fresh_store, graph.graph_id, 0.6, 0.9)
    assert again.status == "unchanged"
    assert len(fresh_store.query("MATCH ()-[r:DERIVED_FROM]->() RETURN r")) == 1


def test_prune_takes_back_its_graph_when_the_link_fails(
    fresh_store: CircuitStore, monkeypatch: pytest.MonkeyPatch
):
    """The child graph and its DERIVED_FROM link land together or not at all."""
    graph = load_graph(bundled("dollar.json.gz"))
    fresh_store.write_graph(graph)

    def refuse(*args: object, **kwargs: object) -> None:
        raise GraphNotFound("link refused (injected)")

    monkeypatch.setattr(fresh_store, "link_derived", refuse)
    with pytest.raises(GraphNotFound, match="injected"):
        prune_stored_graph(fresh_store, graph.graph_id, 0.6, 0.9)
    assert fresh_store.list_graphs()["graph_id"].tolist() == [graph.graph_id]


def test_pure_report_equals_the_stored_report(fresh_store: CircuitStore):
    graph = load_graph(bundled("nobel-clt.json.gz"))
    fresh_store.write_graph(graph)
    stored = score_stored_graph(fresh_store, graph.graph_id, write=False).report
    pure, _ = score_graph(graph)
    assert stored.rows == pure.rows


# --------------------------------------------------------------------------- CLI
def test_score_and_prune_commands(bolt_env):
    run_cli("ingest", str(bundled("bee-insect-clt.json.gz")), env=bolt_env, check=True)
    gid = "abeeisatypeof-1759386939498"
    shown = run_cli("score", gid, "--pin-top", "1", "--pin-top", "22", env=bolt_env, check=True)
    lines = shown.stdout.splitlines()
    assert lines[0] == f"graph {gid}  (from the artifact)"
    assert lines[1].split() == [
        "scope", "name", "replacement", "completeness", "nodes", "features", "pinned", "folded",
        "dropped",
    ]  # fmt: skip
    assert [line.split()[0] for line in lines[2:6]] == ["full", "pruned", "subgraph", "subgraph"]
    assert any("already pruned by its exporter" in line for line in lines)
    as_json = run_cli("score", gid, "--no-write", "--format", "json", env=bolt_env, check=True)
    report = json.loads(as_json.stdout)
    assert report["rows"][0]["scope"] == "full" and 0 < report["rows"][0]["replacement"] < 1

    stored = run_cli(
        "cypher",
        "MATCH (s:Subgraph)-[:SUBGRAPH_OF]->(:Graph {graph_id: $gid}) "
        "RETURN s.name AS name, s.n_pinned AS pinned ORDER BY pinned",
        "--param",
        f"gid={gid}",
        "--format",
        "csv",
        env=bolt_env,
        check=True,
    )
    assert stored.stdout.splitlines() == ["name,pinned", "top 1,1", "top 22,22"]

    pruned = run_cli("prune", gid, "--node-threshold", "0.5", env=bolt_env, check=True)
    assert pruned.stdout.startswith(f"{gid} -> {gid}--pruned-0.5-0.98: kept ")
    listed = run_cli("graphs", "--format", "csv", env=bolt_env, check=True)
    assert len(pd.read_csv(io.StringIO(listed.stdout))) == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["score", "GID", "--pinned", "feature:0:0:0:"], "is not in graph"),
        (["score", "absent-graph"], "no graph 'absent-graph'"),
        (["score", "GID", "--node-threshold", "1.5"], "not in the range"),
        (["prune", "GID", "--edge-threshold", "-1"], "not in the range"),
    ],
)
def test_score_bad_input_is_one_line(bolt_env, args, message):
    run_cli("ingest", str(bundled("nobel-clt.json.gz")), env=bolt_env, check=True)
    gid = load_graph(bundled("nobel-clt.json.gz")).graph_id
    result = run_cli(*[gid if a == "GID" else a for a in args], env=bolt_env)
    assert result.returncode != 0
    lines = error_lines(result)
    assert any(message in line for line in lines), lines
    assert not any("Traceback" in line for line in lines)
    props = cypher_json(bolt_env, "MATCH (g:Graph) RETURN g.replacement_score AS r")
    assert props == [{"r": None}]


def test_readme_score_examples(bolt_env):
    """The README's score/prune lines, verbatim, on the bundled dollar graph."""
    run_cli("ingest", str(bundled("dollar.json.gz")), env=bolt_env, check=True)
    top = run_cli(
        "score", "gemma-dollar", "--pin-top", "1", "--pin-top", "22", env=bolt_env, check=True
    )
    assert "top 22" in top.stdout
    mine = run_cli(
        "score", "gemma-dollar", "--pinned", "feature:18:6:10102:", "--pinned", "20_5796_6",
        "--name", "my-circuit", env=bolt_env, check=True,
    )  # fmt: skip
    row = next(line for line in mine.stdout.splitlines() if "my-circuit" in line).split()
    assert row[:2] == ["subgraph", "my-circuit"] and row[6] == "2"  # two pinned features
    listed = run_cli(
        "cypher",
        "MATCH (s:Subgraph)-[:SUBGRAPH_OF]->(g:Graph) RETURN g.graph_id AS graph, s.name AS name, "
        "s.replacement_score AS r ORDER BY r DESC",
        "--format", "json", env=bolt_env, check=True,
    )  # fmt: skip
    assert sorted(r["name"] for r in json.loads(listed.stdout)) == ["my-circuit", "top 1", "top 22"]
    run_cli("prune", "gemma-dollar", "--node-threshold", "0.8", "--edge-threshold", "0.98",
            env=bolt_env, check=True)  # fmt: skip
    out = run_cli(
        "score", "gemma-dollar", "--pin-top", "3", "--format", "json", env=bolt_env, check=True
    )
    data = json.loads(out.stdout)  # no numpy types leak into JSON
    assert isinstance(data["rows"][2]["pinned"], list) and len(data["rows"][2]["pinned"]) == 3
    assert np.isfinite([r["completeness"] for r in data["rows"]]).all()
