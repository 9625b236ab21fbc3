"""Cross-prompt comparison: metrics by hand, Cypher against pure Python, consensus, statistics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from circuit_atlas.analysis.compare.consensus import consensus_graph
from circuit_atlas.analysis.compare.identities import edge_flows, edge_keys, influence_shares
from circuit_atlas.analysis.compare.metrics import (
    influence_overlap,
    jaccard,
    spearman_shared,
    weighted_overlap,
)
from circuit_atlas.analysis.compare.pairwise import compare_graphs
from circuit_atlas.analysis.compare.stored import compare_stored, store_consensus
from circuit_atlas.analysis.scores.influence import influence, normalise
from circuit_atlas.cli.compare import comparison_payload
from circuit_atlas.cli.json_output import strict_json
from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.graph import CircuitGraph, GraphMetadata
from circuit_atlas.ingest import load_graph
from circuit_atlas.queries.library import run_query
from circuit_atlas.store import CircuitStore

from helpers.cli import error_lines, run_cli
from helpers.data import bundled
from helpers.graphs import build, err, feat, logit, tok

pytestmark = pytest.mark.backends("arcadedb", "neo4j")

ATTRIBUTION_GRAPHS = ["bee-insect-clt.json.gz", "nobel-clt.json.gz", "dollar.json.gz"]


def strict_loads(text: str) -> Any:
    """``json.loads`` that fails on the NaN/Infinity tokens Python would otherwise accept."""

    def refuse(token: str) -> float:
        raise ValueError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_metrics_by_hand():
    a = pd.Series({"x": 1.0, "y": -2.0, "z": 3.0, "u": 4.0})
    b = pd.Series({"x": 2.0, "y": -1.0, "z": 5.0, "w": 1.0})
    assert jaccard(a.index, b.index) == 3 / 5  # shared x y z; union x y z u w
    # Σmin(|a|,|b|) = 1 + 1 + 3 + 0 + 0 = 5;  Σmax = 2 + 2 + 5 + 4 + 1 = 14
    assert weighted_overlap(a, b) == 5 / 14
    assert math.isnan(weighted_overlap(a * 0, b * 0))  # 0/0: no weights, no agreement claimed
    # shared x y z: a = (1, -2, 3) ranks (2, 1, 3); b = (2, -1, 5) ranks (2, 1, 3) → 1
    assert spearman_shared(a, b) == pytest.approx(1.0)
    assert math.isnan(spearman_shared(a.iloc[:2], b.iloc[:2]))  # fewer than 3 shared
    p = pd.Series({"x": 0.5, "y": 0.3, "z": 0.2})
    q = pd.Series({"x": 0.2, "y": 0.3, "w": 0.5})
    assert influence_overlap(p, q) == pytest.approx(0.2 + 0.3)  # min over shared x, y


def flow_graph(graph_id: str, with_t1: bool = True) -> CircuitGraph:
    """T0→F1 2, T1→F1 −1 (optional), F1→L 3, T0→L 1; p(L) = 1."""
    nodes = {"T0": tok(0), "T1": tok(1), "F1": feat(0, 1, 1), "L": logit(1, 5, 1.0)}
    edges = [("T0", "F1", 2.0), ("T1", "F1", -1.0), ("F1", "L", 3.0), ("T0", "L", 1.0)]
    return build(graph_id, nodes, [e for e in edges if with_t1 or e[0] != "T1"])


def test_edge_influence_shares_by_hand():
    g = flow_graph("g")
    # Row L: Â(F1→L) = 3/4, Â(T0→L) = 1/4; q_L = w_L = 1, so q_F1 = 3/4.
    # Row F1: Â(T0→F1) = 2/3, Â(T1→F1) = 1/3.  E = Â · q_target:
    # T0→F1 = 2/3·3/4 = 1/2, T1→F1 = 1/3·3/4 = 1/4, F1→L = 3/4, T0→L = 1/4 (total 7/4).
    assert edge_flows(g) == pytest.approx([0.5, 0.25, 0.75, 0.25])
    shares = influence_shares(g, "edge")
    assert shares is not None
    assert shares.loc[edge_keys(g)].to_numpy() == pytest.approx([2 / 7, 1 / 7, 3 / 7, 1 / 7])
    # A node's outgoing flows sum to its influence: I(T0) = 1/2 + 1/4.
    weights = np.array([0.0, 0.0, 0.0, 1.0])
    assert influence(normalise(g.adjacency()), weights)[0] == pytest.approx(0.75)

    # Without T1→F1, F1's whole input comes from T0: T0→F1 = 3/4, F1→L = 3/4, T0→L = 1/4 (7/4).
    h = flow_graph("h", with_t1=False)
    other = influence_shares(h, "edge")
    assert other is not None
    assert sorted(other.to_numpy()) == pytest.approx([1 / 7, 3 / 7, 3 / 7])
    # Σ min over shared edges: min(2/7, 3/7) + min(3/7, 3/7) + min(1/7, 1/7) = 6/7
    assert influence_overlap(shares, other) == pytest.approx(6 / 7)
    pair = compare_graphs([g, h], by="edge").pairs.iloc[0]
    assert pair["influence_overlap"] == pytest.approx(6 / 7)


def positioned(graph_id: str, spec: dict, edges: list[tuple[str, str, float]]) -> CircuitGraph:
    """Features named by letter@pos: a = L0 #1, b = L0 #2, c = L1 #3, d = L2 #4."""
    index = {"a": (0, 1), "b": (0, 2), "c": (1, 3), "d": (2, 4)}
    nodes = {"T0": tok(0)}
    for name, activation in spec.items():
        letter, pos = name.split("@")
        layer, feature = index[letter]
        nodes[name] = {**feat(layer, int(pos), feature), "activation": activation}
    return build(graph_id, nodes, edges)


def test_spearman_is_over_shared_edge_weights_in_every_mode():
    # Prompt A: a fires at positions 0 and 1; its two edges into c are summed (1 + 1.5 = 2.5).
    a = positioned(
        "A", {"a@0": 1.0, "a@1": 1.0, "b@1": 3.0, "c@1": 4.0, "d@1": 5.0},
        [("T0", "a@0", 1.0), ("a@0", "c@1", 1.0), ("a@1", "c@1", 1.5), ("b@1", "c@1", 1.0),
         ("c@1", "d@1", 4.0)],
    )  # fmt: skip
    # Prompt B, other positions: a→c 2, b→c 0.5, c→d 3 rank like A's 2.5, 1, 4.
    b = positioned(
        "B", {"a@0": 5.0, "b@1": 4.0, "c@2": 3.0, "d@2": 2.0},
        [("T0", "a@0", 1.0), ("a@0", "c@2", 2.0), ("b@1", "c@2", 0.5), ("c@2", "d@2", 3.0)],
    )  # fmt: skip
    by_feature = compare_graphs([a, b], by="feature").pairs.iloc[0]
    assert by_feature["shared_edges"] == 3  # a→c, b→c, c→d
    assert by_feature["spearman"] == pytest.approx(1.0)  # edge weights, positions merged
    # Σ|activation| per feature: A (2, 3, 4, 5) and B (5, 4, 3, 2) rank oppositely.
    assert by_feature["activation_spearman"] == pytest.approx(-1.0)
    # By node key the positions differ, so only T0→a@0 is shared: too few for a correlation.
    by_node = compare_graphs([a, b], by="node").pairs.iloc[0]
    assert by_node["shared_edges"] == 1 and math.isnan(by_node["spearman"])

    # Same positions: the node-key edges T0→a@0, a@0→c@1, b@1→c@1, c@1→d@1 are shared.
    c = positioned(
        "C", {"a@0": 1.0, "b@1": 1.0, "c@1": 1.0, "d@1": 1.0},
        [("T0", "a@0", 10.0), ("a@0", "c@1", 20.0), ("b@1", "c@1", 5.0), ("c@1", "d@1", 40.0)],
    )  # fmt: skip
    # On T0→a, a@0→c, b→c, c→d: A = (1, 1, 1, 4) ranks (2, 2, 2, 4); C = (10, 20, 5, 40) ranks
    # (2, 3, 1, 4). Pearson of the ranks: deviations (−0.5, −0.5, −0.5, 1.5), (−0.5, 0.5, −1.5,
    # 1.5): covariance 3, variances 3 and 5 → ρ = 3/√15.
    for by in ("node", "edge"):
        pair = compare_graphs([a, c], by=by).pairs.iloc[0]
        assert pair["shared_edges"] == 4
        assert pair["spearman"] == pytest.approx(3 / math.sqrt(15))


def test_json_payload_is_strict_json_with_nan_as_null():
    a = flow_graph("g")
    b = flow_graph("h", with_t1=False)
    comparison = compare_graphs([a, b], by="feature")  # one feature, no edges: NaN Spearman
    assert math.isnan(comparison.pairs["spearman"][0])
    payload = strict_loads(strict_json(comparison_payload(comparison, {}), indent=1))
    assert payload["pairs"][0]["spearman"] is None
    assert payload["matrix"]["spearman"]["g"]["h"] is None
    with pytest.raises(ValueError, match="non-strict"):
        strict_loads(json.dumps({"x": math.nan}))


def test_statistical_test_matrices_by_feature_and_without_shared_edges():
    from circuit_atlas.analysis.compare.omnibus import shared_adjacencies

    from helpers.graphs import random_attribution_graph

    a = random_attribution_graph(1, n_layers=4, n_pos=4, features_per_slot=2, density=0.6)
    b = CircuitGraph(a.nodes, a.edges, a.metadata.model_copy(update={"graph_id": "copy"}))
    shared, matrices = shared_adjacencies([a, b], by="feature")
    assert len(shared) == int((a.nodes["kind"] == "feature").sum())  # tokens etc. have no id
    assert all(isinstance(x, str) and x.startswith("toy|toy|") for x in shared)
    assert np.array_equal(matrices[0], matrices[1])
    bare = CircuitGraph(a.nodes, a.edges.iloc[:0], a.metadata.model_copy(update={"graph_id": "b"}))
    with pytest.raises(CircuitAtlasError, match="graph 'b' has no edge among the"):
        shared_adjacencies([a, bare], by="node")  # not an ARPACK crash in the embedding


def test_consensus_fraction_flags_are_exclusive():
    from click.testing import CliRunner

    from circuit_atlas.cli import cli

    for flags in (["--union", "--intersection"], ["--intersection", "--min-fraction", "0.3"]):
        result = CliRunner().invoke(cli, ["consensus", "g1", "g2", *flags])
        assert result.exit_code == 2
        error = [line for line in result.output.splitlines() if line.startswith("Error:")]
        assert len(error) == 1 and "contradict each other" in error[0]


def small(graph_id: str, weights: dict[tuple[str, str], float]) -> CircuitGraph:
    nodes = {"T0": tok(0), "E": err(0, 1), "F1": feat(0, 1, 1), "F2": feat(1, 1, 2),
             "L": logit(1, 5, 0.9)}  # fmt: skip
    return build(graph_id, nodes, [(s, t, w) for (s, t), w in weights.items()])


def test_consensus_keeps_edges_by_support_with_mean_weights():
    g1 = small("g1", {("T0", "F1"): 1.0, ("F1", "F2"): 2.0, ("F2", "L"): 1.0, ("E", "F2"): 1.0})
    g2 = small("g2", {("T0", "F1"): 3.0, ("F1", "F2"): 4.0, ("F2", "L"): 1.0})
    g3 = small("g3", {("T0", "F1"): 5.0, ("T0", "F2"): 1.0, ("F2", "L"): 1.0})
    half = consensus_graph([g1, g2, g3], 0.5)
    nodes, edges = half.to_dataframes()
    got = {(s.split(":")[0] + s.split(":")[-2], t.split(":")[0] + t.split(":")[-2]): (w, sup)
           for s, t, w, sup in zip(edges["source_key"], edges["target_key"], edges["weight"],
                                   edges["support"])}  # fmt: skip
    assert got == {
        ("embedding", "feature1"): (3.0, 1.0),  # T0→F1 in all three: mean(1, 3, 5)
        ("feature1", "feature2"): (3.0, 2 / 3),  # F1→F2 in two: mean(2, 4)
        ("feature2", "logit5"): (1.0, 1.0),
    }
    assert consensus_graph([g1, g2, g3], 1.0).n_edges == 2  # intersection
    assert consensus_graph([g1, g2, g3], 1 / 3).n_edges == 5  # union
    assert half.metadata.extra["sources"] == ["g1", "g2", "g3"]
    assert half.metadata.extra["prompt_lengths"] == []  # no tokens recorded
    g1.metadata = g1.metadata.model_copy(update={"tokens": ["a", "b"]})
    g2.metadata = g2.metadata.model_copy(update={"tokens": ["a", "b", "c"]})
    mixed = consensus_graph([g1, g2, g3], 0.5).metadata
    assert mixed.extra["prompt_lengths"] == [2, 3] and mixed.tokens == []  # the CLI's note


def test_mixed_models_and_too_few_graphs_are_refused():
    g1 = small("g1", {("T0", "F1"): 1.0})
    other = small("g2", {("T0", "F1"): 1.0})
    other.metadata = other.metadata.model_copy(update={"model": "another-model"})
    with pytest.raises(CircuitAtlasError, match="different models .* --allow-mixed"):
        compare_graphs([g1, other])
    assert len(compare_graphs([g1, other], allow_mixed=True).pairs) == 1
    with pytest.raises(CircuitAtlasError, match="at least two graphs"):
        compare_graphs([g1])
    with pytest.raises(CircuitAtlasError, match="different models"):
        consensus_graph([g1, other])


def prompt_graph(
    graph_id: str,
    tokens: list[str],
    activation: float,
    prob: float,
    edges: list[tuple[str, str, float]],
    record_tokens: bool = True,
) -> CircuitGraph:
    """One prompt: embeddings T0… with their tokens, feature F (L0 #7) and logit L (vocab 5) on
    the last token, and an MLP node M without a position. Labels and source ids as Neuronpedia
    writes them (a source id names its own position, a logit label its probability)."""
    last = len(tokens) - 1
    nodes = {
        f"T{i}": {**tok(i), "label": f'Emb: "{t}"', "token": t, "source_id": f"E_{i}"}
        for i, t in enumerate(tokens)
    }
    text = {"token": tokens[-1], "source_id": f"0_7_{last}", "label": "say is"}
    nodes["F"] = {**feat(0, last, 7), "activation": activation, **text}
    text = {"token": tokens[-1], "source_id": f"27_5_{last}", "label": f'Output " x" (p={prob})'}
    nodes["L"] = {**logit(last, 5, prob), "is_target_logit": True, **text}
    nodes["M"] = {"kind": "mlp", "layer": 0, "label": "m0", "source_id": "m0"}
    index = {name: i for i, name in enumerate(nodes)}
    edge_rows = [{"source": index[s], "target": index[t], "weight": w} for s, t, w in edges]
    metadata = GraphMetadata(graph_id=graph_id, model="toy", transcoder_set="toy",
                             tokens=tokens if record_tokens else [])  # fmt: skip
    return CircuitGraph(pd.DataFrame(list(nodes.values())), pd.DataFrame(edge_rows), metadata)


def three_prompts() -> list[CircuitGraph]:
    """Lengths 3, 4 and 2 (C records no tokens: its length is its last position + 1)."""
    a = prompt_graph("A", ["<bos>", "x", " is"], 1.0, 0.6,
                     [("T2", "F", 1.0), ("T0", "F", 0.5), ("F", "L", 2.0)])  # fmt: skip
    b = prompt_graph("B", ["<bos>", "w", "x", " is"], 2.0, 0.2,
                     [("T3", "F", 3.0), ("T1", "F", 1.0), ("F", "L", 4.0)])  # fmt: skip
    c = prompt_graph("C", ["<bos>", " is"], 3.0, 0.4, [("T1", "F", 5.0), ("F", "L", 6.0)],
                     record_tokens=False)  # fmt: skip
    return [a, b, c]


def by_slot(graph: CircuitGraph) -> dict[tuple[str, object], dict]:
    """(kind, pos) → the node's row; pos None for nodes without one."""
    rows = graph.nodes.to_dict("records")
    return {(r["kind"], None if pd.isna(r["pos"]) else int(r["pos"])): r for r in rows}


def slot_edges(graph: CircuitGraph) -> dict[tuple[str, str], tuple[float, float]]:
    """'kind@pos' → 'kind@pos': (weight, support)."""
    keys = graph.keys()
    name = [f"{k.kind}@{k.pos}" for k in keys]
    return {
        (name[s], name[t]): (w, sup)
        for s, t, w, sup in zip(graph.edges["source"], graph.edges["target"],
                                graph.edges["weight"], graph.edges["support"])
    }  # fmt: skip


def test_consensus_align_end_merges_the_last_tokens_that_start_keeps_apart():
    graphs = three_prompts()
    # start: F and L sit at positions 2 (A), 3 (B), 1 (C): each in 1/3 < 0.5 of the graphs.
    start = consensus_graph(graphs, 0.5)
    nodes = by_slot(start)
    assert sorted(nodes, key=str) == sorted(
        [("embedding", 0), ("embedding", 1), ("embedding", 2), ("mlp", None)], key=str
    )
    assert start.n_edges == 0
    assert nodes[("embedding", 0)]["token"] == "<bos>"  # all three agree
    assert nodes[("embedding", 0)]["label"] == 'Emb: "<bos>"'
    assert nodes[("embedding", 0)]["source_id"] == "E_0"
    assert nodes[("embedding", 1)]["token"] is None  # x, w, " is": no prompt's token is claimed
    assert nodes[("embedding", 2)]["support"] == pytest.approx(2 / 3)  # A and B only
    assert start.metadata.extra["align"] == "start"
    assert "position_shifts" not in start.metadata.extra

    # end: L_max = 4, shifts A +1, B 0, C +2, so every prompt's last token is at position 3.
    end = consensus_graph(graphs, 0.5, align="end")
    assert end.metadata.extra["position_shifts"] == {"A": 1, "B": 0, "C": 2}
    assert end.metadata.extra["prompt_lengths"] == [3, 4]  # C records no tokens
    nodes = by_slot(end)
    # embedding@0 is B's <bos> only (1/3): dropped; @1 = A's <bos> + B's "w" (2/3);
    # @2 = A's "x", B's "x", C's <bos>; @3 = every prompt's " is".
    assert sorted(nodes, key=str) == sorted(
        [("embedding", 1), ("embedding", 2), ("embedding", 3), ("feature", 3), ("logit", 3),
         ("mlp", None)], key=str,
    )  # fmt: skip
    assert nodes[("embedding", 1)]["support"] == pytest.approx(2 / 3)
    assert nodes[("embedding", 2)]["support"] == 1.0
    assert nodes[("embedding", 2)]["token"] is None and nodes[("embedding", 2)]["label"] is None
    last = nodes[("embedding", 3)]
    assert (last["token"], last["label"], last["support"]) == (" is", 'Emb: " is"', 1.0)
    assert last["source_id"] is None  # E_2, E_3, E_1: each names its own prompt's position
    feature = nodes[("feature", 3)]
    assert feature["support"] == 1.0 and feature["activation"] == pytest.approx(2.0)  # (1+2+3)/3
    assert (feature["label"], feature["token"], feature["source_id"]) == ("say is", " is", None)
    answer = nodes[("logit", 3)]
    assert answer["token_prob"] == pytest.approx(0.4)  # (0.6 + 0.2 + 0.4) / 3
    assert answer["label"] is None  # each label carries its own prompt's probability
    assert answer["is_target_logit"] is True and answer["feature"] == 5
    assert nodes[("mlp", None)]["label"] == "m0" and nodes[("mlp", None)]["support"] == 1.0
    assert slot_edges(end) == {
        ("embedding@3", "feature@3"): (pytest.approx(3.0), 1.0),  # mean(1, 3, 5)
        ("embedding@1", "feature@3"): (pytest.approx(0.75), pytest.approx(2 / 3)),  # A 0.5, B 1
        ("feature@3", "logit@3"): (pytest.approx(4.0), 1.0),  # mean(2, 4, 6)
    }
    # The intersection keeps only what all three share.
    both = consensus_graph(graphs, 1.0, align="end")
    assert sorted(slot_edges(both)) == [("embedding@3", "feature@3"), ("feature@3", "logit@3")]


def test_consensus_alignment_ids_and_bad_values():
    from click.testing import CliRunner

    from circuit_atlas.analysis.compare.consensus import default_consensus_id
    from circuit_atlas.cli import cli

    graphs = three_prompts()
    digest = "2e70d7238a"  # sha256("A\nB\nC")[:10]: the start id is what it always was
    assert default_consensus_id(["C", "A", "B"], 0.5) == f"consensus-0.5-3graphs-{digest}"
    assert consensus_graph(graphs, 0.5).graph_id == f"consensus-0.5-3graphs-{digest}"
    assert consensus_graph(graphs, 0.5, align="end").graph_id == (
        f"consensus-0.5-3graphs-{digest}-end"
    )
    with pytest.raises(CircuitAtlasError, match="unknown alignment 'middle'.*'start'.*'end'"):
        consensus_graph(graphs, 0.5, align="middle")
    result = CliRunner().invoke(cli, ["consensus", "A", "B", "--align", "middle"])
    assert result.exit_code == 2
    error = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and "'middle' is not one of 'start', 'end'" in error[0]


def test_cypher_jaccard_equals_pure_python_on_bundled_graphs(fresh_store: CircuitStore):
    graphs = [load_graph(bundled(name)) for name in ATTRIBUTION_GRAPHS]
    for graph in graphs:
        fresh_store.write_graph(graph)
    ids = sorted(g.graph_id for g in graphs)
    cypher = run_query(fresh_store, "feature_jaccard", {"graph_ids": ids})
    pure = compare_stored(fresh_store, ids, "feature").pairs
    merged = cypher.merge(pure, on=["graph_a", "graph_b"], suffixes=("", "_pure"))
    assert len(merged) == 3
    assert (merged["shared"] == merged["shared_pure"]).all()
    assert (merged["jaccard"] == merged["jaccard_pure"]).all()


def test_identical_graphs_are_at_distance_zero_and_differ_from_others():
    from circuit_atlas.analysis.compare.omnibus import (
        latent_distribution_pvalues,
        omnibus,
        ranked_adjacencies,
    )

    from helpers.graphs import random_attribution_graph

    a = random_attribution_graph(1, n_layers=4, n_pos=4, features_per_slot=2, density=0.6)
    b = CircuitGraph(a.nodes, a.edges, a.metadata.model_copy(update={"graph_id": "copy"}))
    c = random_attribution_graph(2, n_layers=4, n_pos=4, features_per_slot=2, density=0.6)
    c.metadata = c.metadata.model_copy(update={"graph_id": "other"})
    result = omnibus([a, b, c], by="node", n_components=2)
    assert result.distances.loc[a.graph_id, "copy"] == pytest.approx(0.0, abs=1e-9)
    assert result.distances.loc[a.graph_id, "other"] > 0.01
    tests = latent_distribution_pvalues([a, b], n_bootstraps=50)
    assert 0.0 <= tests["pvalue"][0] <= 1.0
    assert tests["pvalue"][0] > 0.5  # the same graph twice
    # `compare --stats` builds the ranked matrices once for both: same numbers, inputs untouched
    ranked = ranked_adjacencies([a, b, c])
    before = [m.copy() for m in ranked[1]]
    shared = omnibus([a, b, c], by="node", n_components=2, ranked=ranked)
    assert shared.distances.equals(result.distances)
    assert latent_distribution_pvalues(
        [a, b], n_bootstraps=50, ranked=ranked_adjacencies([a, b])
    ).equals(tests)
    assert all(np.array_equal(x, y) for x, y in zip(before, ranked[1]))


def test_compare_and_consensus_commands(bolt_env, tmp_path: Path):
    for name in ATTRIBUTION_GRAPHS:
        run_cli("ingest", str(bundled(name)), env=bolt_env, check=True)
    ids = sorted(load_graph(bundled(n)).graph_id for n in ATTRIBUTION_GRAPHS)
    report = tmp_path / "compare.html"
    out = run_cli("compare", *ids, "--report", str(report), "--json", env=bolt_env, check=True)
    payload = strict_loads(out.stdout)
    assert len(payload["pairs"]) == 3 and set(payload["matrix"]) >= {"jaccard", "spearman"}
    assert any(pair["spearman"] is None for pair in payload["pairs"])  # NaN written as null
    text = report.read_text()
    assert text.startswith("<!doctype html>") and "data:image/png;base64," in text
    assert "src='http" not in text  # self-contained

    # --by edge: influence overlap from edge flows; --stats carries its assumptions everywhere.
    stats_report = tmp_path / "stats.html"
    same_set = [ids[0], ids[2]]  # the two graphs of one transcoder set (not gemma-dollar)
    edge = run_cli("compare", *same_set, "--by", "edge", "--stats", "--json", "--report",
                   str(stats_report), env=bolt_env, check=True)  # fmt: skip
    by_edge = strict_loads(edge.stdout)
    assert 0.0 < by_edge["pairs"][0]["influence_overlap"] < 1.0
    assert by_edge["statistics_assumptions"].startswith("Assumes:")
    assert 0.0 <= by_edge["latent_distribution_test"][0]["pvalue"] <= 1.0
    assert "i.i.d." in stats_report.read_text()

    made = run_cli("consensus", *ids[:2], "--union", env=bolt_env, check=True)
    assert "consensus of 2 graphs" in made.stdout
    links = run_cli(
        "cypher", "MATCH (c:Graph)-[r:DERIVED_FROM {operation: 'consensus'}]->(s:Graph) "
        "RETURN count(r) AS links", "--format", "csv", env=bolt_env, check=True,
    )  # fmt: skip
    assert links.stdout.splitlines() == ["links", "2"]

    both = run_cli("consensus", *same_set, "--intersection", "--graph-id", "both", env=bolt_env,
                   check=True)  # fmt: skip
    assert "consensus of 2 graphs at >= 100%" in both.stdout
    sources = run_cli(
        "cypher", "MATCH (:Graph {graph_id: 'both'})-[r:DERIVED_FROM]->(s:Graph) "
        "RETURN s.graph_id AS source, r.min_fraction AS fraction ORDER BY source",
        "--format", "csv", env=bolt_env, check=True,
    )  # fmt: skip
    assert sources.stdout.splitlines() == ["source,fraction", *(f"{i},1.0" for i in same_set)]

    mixed = run_cli("compare", ids[0], "gpt2-ioi", env=bolt_env)
    assert mixed.returncode == 1 and "no graph 'gpt2-ioi'" in error_lines(mixed)[0]


def write_neuronpedia_prompt(
    path: Path, slug: str, tokens: list[str], weights: tuple[float, float], prob: float
) -> Path:
    """A minimal Neuronpedia file: embeddings, feature L0 #7 and logit 5 on the last token,
    edges last embedding → feature → logit."""
    from circuit_atlas.ingest.neuronpedia import cantor_pair

    last = len(tokens) - 1
    nodes: list[dict[str, Any]] = [
        {"node_id": f"E_{100 + i}_{i}", "feature": 100 + i, "layer": "E", "ctx_idx": i,
         "feature_type": "embedding", "clerp": f'Emb: "{t}"'}
        for i, t in enumerate(tokens)
    ]  # fmt: skip
    nodes.append({"node_id": f"0_7_{last}", "feature": cantor_pair(0, 7), "layer": "0",
                  "ctx_idx": last, "feature_type": "cross layer transcoder"})  # fmt: skip
    nodes.append({"node_id": f"27_5_{last}", "feature": 5, "layer": "27", "ctx_idx": last,
                  "feature_type": "logit", "token_prob": prob, "is_target_logit": True,
                  "clerp": f'Output " x" (p={prob})'})  # fmt: skip
    links = [
        {"source": f"E_{100 + last}_{last}", "target": f"0_7_{last}", "weight": weights[0]},
        {"source": f"0_7_{last}", "target": f"27_5_{last}", "weight": weights[1]},
    ]
    metadata = {"slug": slug, "scan": "toy-model", "prompt_tokens": tokens, "schema_version": 1,
                "info": {"transcoder_set": "toy"}}  # fmt: skip
    path.write_text(json.dumps({"metadata": metadata, "nodes": nodes, "links": links}))
    return path


def test_consensus_command_aligns_prompts_at_the_end(bolt_env, tmp_path: Path):
    from circuit_atlas.analysis.compare.consensus import default_consensus_id

    from helpers.cli import cypher_json

    short = write_neuronpedia_prompt(tmp_path / "p.json", "p", ["<bos>", "a", " is"], (1, 2), 0.6)
    long = write_neuronpedia_prompt(
        tmp_path / "q.json", "q", ["<bos>", "b", "c", " is"], (3, 4), 0.2
    )
    run_cli("ingest", str(short), str(long), env=bolt_env, check=True)

    # start: feature and logit at positions 2 and 3 never meet; embeddings 0-2 do.
    start = run_cli("consensus", "p", "q", "--intersection", env=bolt_env, check=True)
    start_id = default_consensus_id(["p", "q"], 1.0)
    assert f"{start_id}: consensus of 2 graphs at >= 100%: 3 nodes, 0 edges" in start.stdout
    assert "the prompts have 3 to 4 tokens" in start.stdout and "--align end" in start.stdout

    end = run_cli("consensus", "p", "q", "--intersection", "--align", "end", env=bolt_env,
                  check=True)  # fmt: skip
    end_id = default_consensus_id(["p", "q"], 1.0, "end")
    assert end_id != start_id
    assert f"{end_id}: consensus of 2 graphs at >= 100%, right-aligned: 5 nodes, 2 edges" in (
        end.stdout
    )
    assert "right-aligned: nodes match at the same distance from the last token" in end.stdout

    # Both stay stored side by side; the links record the alignment and each source's shift.
    links = cypher_json(
        bolt_env, "MATCH (c:Graph)-[r:DERIVED_FROM {operation: 'consensus'}]->(s:Graph) "
        "RETURN c.graph_id AS consensus, s.graph_id AS source, r.align AS align, "
        "r.position_shift AS shift ORDER BY align DESC, source",
    )  # fmt: skip
    assert links == [
        {"consensus": start_id, "source": "p", "align": "start", "shift": 0},
        {"consensus": start_id, "source": "q", "align": "start", "shift": 0},
        {"consensus": end_id, "source": "p", "align": "end", "shift": 1},
        {"consensus": end_id, "source": "q", "align": "end", "shift": 0},
    ]
    nodes = cypher_json(
        bolt_env, f"MATCH (n:Node {{graph_id: '{end_id}'}}) RETURN n.kind AS kind, n.pos AS pos, "
        "n.token AS token, n.label AS label ORDER BY kind, pos",
    )  # fmt: skip
    assert nodes == [
        {"kind": "embedding", "pos": 1, "token": None, "label": None},  # <bos> vs "b"
        {"kind": "embedding", "pos": 2, "token": None, "label": None},  # "a" vs "c"
        {"kind": "embedding", "pos": 3, "token": " is", "label": 'Emb: " is"'},
        {"kind": "feature", "pos": 3, "token": " is", "label": None},
        {"kind": "logit", "pos": 3, "token": " is", "label": None},  # p differs per prompt
    ]
    edges = cypher_json(
        bolt_env, f"MATCH (a:Node {{graph_id: '{end_id}'}})-[e:EDGE]->(b:Node) "
        "RETURN a.kind AS source, b.kind AS target, e.weight AS weight, e.support AS support "
        "ORDER BY source",
    )  # fmt: skip
    assert edges == [
        {"source": "embedding", "target": "feature", "weight": 2.0, "support": 1.0},  # mean(1, 3)
        {"source": "feature", "target": "logit", "weight": 3.0, "support": 1.0},  # mean(2, 4)
    ]


@pytest.mark.slow
@pytest.mark.skipif(not (Path(__file__).resolve().parents[3] / "shared" / "data").exists(),
                    reason="../shared/data is absent")  # fmt: skip
def test_analogy_corpus_jaccard_from_cypher_equals_json_and_consensus_is_queryable(
    fresh_store: CircuitStore,
):
    from circuit_atlas.ingest.neuronpedia import cantor_unpair

    from helpers.data import SHARED_GRAPHS

    files = sorted((SHARED_GRAPHS / "neuronpedia" / "analogies").glob("*.json"))
    assert len(files) == 57
    direct: dict[str, set[tuple[int, int]]] = {}
    for path in files:
        raw = json.loads(path.read_text())
        direct[raw["metadata"]["slug"]] = {
            cantor_unpair(n["feature"])
            for n in raw["nodes"]
            if n["feature_type"] == "cross layer transcoder"
        }
        fresh_store.write_graph(load_graph(path))
    cypher = run_query(fresh_store, "feature_jaccard", {"graph_ids": []})
    assert len(cypher) == 57 * 56 // 2
    for row in cypher.to_dict(orient="records"):
        a, b = direct[row["graph_a"]], direct[row["graph_b"]]
        assert row["shared"] == len(a & b)
        assert row["jaccard"] == len(a & b) / len(a | b)

    ids = sorted(direct)
    result, graph = store_consensus(fresh_store, ids, 0.5)
    assert result.status == "created"
    rows = fresh_store.query(
        "MATCH (c:Graph {graph_id: $c})<-[:IN_GRAPH]-(n:Node) RETURN count(n) AS nodes",
        {"c": graph.graph_id},
    )
    assert rows == [{"nodes": graph.n_nodes}] and graph.n_nodes > 100
    sources = fresh_store.query(
        "MATCH (:Graph {graph_id: $c})-[:DERIVED_FROM]->(s:Graph) RETURN count(s) AS n",
        {"c": graph.graph_id},
    )
    assert sources == [{"n": 57}]
    supported = run_query(fresh_store, "top_edges_per_layer_pair", {"graph_id": graph.graph_id})
    assert len(supported) > 0
    assert np.isfinite(supported["weight"]).all()
