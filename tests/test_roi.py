"""Regions of interest: planted partitions, no-structure controls, quotient sums, write-back
idempotence, the cross-prompt corpus, the HTML report (rendered in headless Chromium), bad input.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from score_graphs import build, err, feat, logit, tok
from sklearn.metrics import adjusted_rand_score

from circuit_atlas.analysis.roi.affinity import graph_affinity, planted_affinity
from circuit_atlas.analysis.roi.detect import RoiResult, detect
from circuit_atlas.analysis.roi.methods import METHODS, RoiParams
from circuit_atlas.analysis.roi.quotient import quotient_graph
from circuit_atlas.analysis.roi.report import roi_html
from circuit_atlas.analysis.roi.stored import roi_stored
from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.ingest import load_graph
from circuit_atlas.queries.library import run_query
from circuit_atlas.store import CircuitStore

from conftest import SHARED_GRAPHS, bundled, error_lines, needs_shared, run_cli


def planted(n: int, blocks: int, seed: int, p_in: float = 0.25, p_out: float = 0.02):
    """A weighted, directed, signed SBM graph with clearly separated blocks."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, blocks, n)
    same = truth[:, None] == truth[None, :]
    present = rng.random((n, n)) < np.where(same, p_in, p_out)
    weights = rng.exponential(1.0, (n, n)) * np.sign(rng.normal(size=(n, n)))
    matrix = present * weights
    np.fill_diagonal(matrix, 0.0)
    return sp.csr_matrix(matrix), truth


@pytest.mark.parametrize("method", sorted(METHODS))
@pytest.mark.parametrize("n, blocks, seed", [(240, 4, 0), (900, 8, 1)])
def test_every_method_recovers_planted_blocks(method, n, blocks, seed):
    matrix, truth = planted(n, blocks, seed)
    k = blocks if method == "spectral-sklearn" else None
    result = detect(planted_affinity(matrix), method, RoiParams(seed=3, k=k, max_k=10))
    assert adjusted_rand_score(truth, result.labels) >= 0.9
    assert result.quality["modularity"] > 0.3


@pytest.mark.parametrize("method", ["spectral", "sbm", "dcsbm"])
def test_bic_picks_one_block_without_structure(method):
    rng = np.random.default_rng(5)
    matrix = sp.csr_matrix((rng.random((300, 300)) < 0.2).astype(float))
    assert detect(planted_affinity(matrix), method).n_rois == 1


@pytest.mark.parametrize("method", ["louvain", "leiden"])
def test_modularity_is_near_zero_without_structure(method):
    rng = np.random.default_rng(5)
    matrix = sp.csr_matrix((rng.random((300, 300)) < 0.2).astype(float))
    assert detect(planted_affinity(matrix), method).quality["modularity"] < 0.1


def test_same_seed_same_labels_and_stability_is_reported():
    matrix, _ = planted(240, 4, 2)
    affinity = planted_affinity(matrix)
    first = detect(affinity, "leiden", RoiParams(seed=7), stability_seeds=3)
    second = detect(affinity, "leiden", RoiParams(seed=7))
    assert (first.labels == second.labels).all()
    assert first.quality["stability_ari_seeds"] == pytest.approx(1.0)
    assert first.run_id == second.run_id


def test_quotient_sums_weights_between_rois_by_hand():
    #   T0 → F1 (2), T0 → F2 (1), F1 → F2 (5, inside ROI 0), F1 → F3 (−3), F2 → F3 (1),
    #   E → F3 (4), F3 → L (2).   ROIs: {F1, F2} = 0, {F3, E} = 1.
    graph = build(
        "tiny",
        {"T0": tok(0), "F1": feat(0, 0, 1), "F2": feat(1, 0, 2), "E": err(1, 0),
         "F3": feat(2, 0, 3), "L": logit(0, 9, 1.0)},
        [("T0", "F1", 2), ("T0", "F2", 1), ("F1", "F2", 5), ("F1", "F3", -3), ("F2", "F3", 1),
         ("E", "F3", 4), ("F3", "L", 2)],
    )  # fmt: skip
    affinity = graph_affinity(graph)
    order = {k: i for i, k in enumerate(affinity.ids)}
    labels = np.zeros(affinity.n, dtype=np.int64)
    labels[order["feature:2:0:3:"]] = labels[order["error:1:0::"]] = 1
    result = RoiResult(affinity, "hand", RoiParams(), labels, {"modularity": 0.0})
    quotient = quotient_graph(result, [graph], "tiny-q")
    nodes, edges = quotient.to_dataframes()
    got = dict(zip(zip(edges["source_key"], edges["target_key"]), edges["weight"]))
    assert got == {
        ("embedding::0::", "roi:::0:"): 3.0,  # T0 → F1 + T0 → F2
        ("roi:::0:", "roi:::1:"): -2.0,  # F1 → F3 (−3) + F2 → F3 (1)
        ("roi:::1:", "logit::0:9:"): 2.0,  # F3 → L
    }
    internal = dict(zip(nodes["node_key"], nodes["activation"]))
    assert internal["roi:::0:"] == 5.0 and internal["roi:::1:"] == 4.0  # F1→F2; E→F3


def test_rois_are_written_back_once_and_path_queries_run_on_the_quotient(
    fresh_store: CircuitStore,
):
    graph = load_graph(bundled("dollar.json.gz"))
    fresh_store.write_graph(graph)
    first = roi_stored(fresh_store, [graph.graph_id], "leiden", RoiParams(seed=1))
    count = (
        "MATCH (r:ROI) OPTIONAL MATCH (r)<-[m:IN_ROI]-() "
        "RETURN count(DISTINCT r) AS rois, count(m) AS members"
    )
    before = fresh_store.query(count)
    second = roi_stored(fresh_store, [graph.graph_id], "leiden", RoiParams(seed=1))
    assert fresh_store.query(count) == before
    assert before[0]["rois"] == first.result.n_rois
    assert before[0]["members"] == first.result.affinity.n  # every non-anchor node, once
    assert (first.result.labels == second.result.labels).all()

    members = run_query(fresh_store, "roi_members", {"run_id": first.result.run_id})
    assert len(members) == first.result.affinity.n
    assert set(members["prompts"].map(tuple)) == {(graph.metadata.prompt,)}
    paths = run_query(
        fresh_store,
        "roi_paths",
        {"run_id": first.result.run_id, "target_key": "logit:27:6:64091:", "k": 3},
    )
    assert len(paths) == 3 and all(n[0].startswith("embedding") for n in paths["nodes"])
    assert all(any(key.startswith("roi:") for key in n) for n in paths["nodes"])

    fresh_store.delete_graph(graph.graph_id)
    assert fresh_store.query("MATCH (r:ROI) RETURN count(r) AS c") == [{"c": 0}]


def test_bad_input(fresh_store: CircuitStore):
    graph = load_graph(bundled("dollar.json.gz"))
    fresh_store.write_graph(graph)
    with pytest.raises(CircuitAtlasError, match="k = 5000 is larger than the 812 nodes"):
        roi_stored(fresh_store, [graph.graph_id], "sbm", RoiParams(k=5000))
    anchors_only = build("anchors", {"T0": tok(0), "L": logit(0, 1, 1.0)}, [("T0", "L", 1.0)])
    fresh_store.write_graph(anchors_only)
    with pytest.raises(CircuitAtlasError, match="no nodes to group"):
        roi_stored(fresh_store, ["anchors"], "louvain")
    other = load_graph(bundled("nobel-clt.json.gz"))
    fresh_store.write_graph(other)
    with pytest.raises(CircuitAtlasError, match="different transcoder sets .* --allow-mixed"):
        roi_stored(fresh_store, [graph.graph_id, other.graph_id], "leiden")
    assert fresh_store.query("MATCH (r:ROI) RETURN count(r) AS c") == [{"c": 0}]


def render_in_chromium(page: Path, tmp_path: Path) -> str:
    """The DOM headless Chromium builds from ``page`` (the flags the issue names)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("Chromium is not installed (Debian package 'chromium')")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    shot = tmp_path / "shot.png"
    subprocess.run([binary, *flags, f"--screenshot={shot}", "--window-size=1200,2400",
                    page.as_uri()], capture_output=True, timeout=120, check=True)  # fmt: skip
    assert shot.stat().st_size > 10_000  # something was drawn
    dom = subprocess.run([binary, *flags, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    return dom.stdout


def test_report_is_self_contained_and_renders(tmp_path: Path):
    matrix, _ = planted(200, 4, 4)
    result = detect(planted_affinity(matrix), "louvain", stability_seeds=2)
    graph = load_graph(bundled("dollar.json.gz"))
    single = detect(graph_affinity(graph), "leiden")
    page = tmp_path / "roi.html"
    page.write_text(roi_html(single, quotient_graph(single, [graph], "q")))
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 3 and "src='http" not in text
    assert "Top members per ROI" in text and result.n_rois == 4
    dom = render_in_chromium(page, tmp_path)
    assert "Quality and stability" in dom and "Quotient graph" in dom


@pytest.mark.slow
@needs_shared()
def test_cross_prompt_rois_on_the_analogy_corpus(bolt_env, tmp_path: Path):
    run_cli("ingest", str(SHARED_GRAPHS / "neuronpedia" / "analogies"), env=bolt_env, check=True)
    report = tmp_path / "analogies.html"
    out = run_cli("roi", "--contains", "clt-hp", "--method", "leiden", "--bootstrap", "2",
                  "--report", str(report), env=bolt_env, check=True)  # fmt: skip
    run_id = out.stdout.split()[1].rstrip(":")
    members = run_cli("query", "roi_members", "--param", f"run_id={run_id}", "--format", "json",
                      env=bolt_env, check=True)  # fmt: skip
    rows = pd.read_json(pd.io.common.StringIO(members.stdout))
    assert rows["graphs"].min() >= 2  # every member occurs in at least --min-graphs prompts
    assert all(len(p) == g for p, g in zip(rows["prompts"], rows["graphs"]))
    assert rows["prompts"][0][0].startswith("<bos>The saying goes:")
    again = run_cli("roi", "--contains", "clt-hp", "--method", "leiden", "--bootstrap", "2",
                    env=bolt_env, check=True)  # fmt: skip
    assert again.stdout.split()[1].rstrip(":") == run_id
    counted = run_cli("cypher", "MATCH (r:ROI) RETURN count(r) AS n", "--format", "csv",
                      env=bolt_env, check=True)  # fmt: skip
    assert int(counted.stdout.splitlines()[1]) == rows["roi"].nunique()
    assert "Adjacency sorted by ROI" in report.read_text()
    mixed = run_cli("roi", "account-clt-hp", "--contains", "clt-hp", env=bolt_env)
    assert mixed.returncode == 1 and "not both" in error_lines(mixed)[0]


def test_sparse_sbm_likelihood_equals_graspologic():
    from graspologic.models import SBMEstimator

    from circuit_atlas.analysis.roi.methods import sparse_sbm_log_likelihood

    rng = np.random.default_rng(0)
    upper = np.triu((rng.random((120, 120)) < 0.1).astype(float), 1)
    binary = upper + upper.T
    labels = rng.integers(0, 3, 120)
    dense = SBMEstimator(directed=False, loops=False).fit(binary, y=labels)
    assert sparse_sbm_log_likelihood(sp.csr_matrix(binary), labels, 3) == pytest.approx(
        dense.score(binary), abs=1e-9
    )


@pytest.mark.parametrize("method", ["sbm", "dcsbm"])
def test_sparse_block_models_recover_blocks_and_pick_one_without_structure(method, monkeypatch):
    from circuit_atlas.analysis.roi import methods

    monkeypatch.setattr(methods, "DENSE_LIMIT", 100)  # force the sparse path on small graphs
    matrix, truth = planted(900, 8, 1)
    result = detect(planted_affinity(matrix), method)
    assert result.details["likelihood"].startswith("sparse")
    assert adjusted_rand_score(truth, result.labels) >= 0.9
    rng = np.random.default_rng(5)
    noise = sp.csr_matrix((rng.random((300, 300)) < 0.2).astype(float))
    assert detect(planted_affinity(noise), method).n_rois == 1
