"""Regions of interest: planted partitions, no-structure controls, quotient sums, write-back
idempotence, run ids, decoder cosines by hand, the cross-prompt corpus, the HTML report
(rendered in headless Chromium), bad input, and graspologic staying unimported.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score

from circuit_atlas.analysis.roi.affinity import (
    cross_prompt_affinity,
    graph_affinity,
    planted_affinity,
)
from circuit_atlas.analysis.roi.algorithms import METHODS, RoiParams
from circuit_atlas.analysis.roi.decoders import (
    decoder_cosine,
    decoders_from_arrays,
    load_decoders,
    within_roi_cosine,
)
from circuit_atlas.analysis.roi.detect import RoiResult, detect
from circuit_atlas.analysis.roi.quotient import quotient_graph
from circuit_atlas.analysis.roi.report import roi_html
from circuit_atlas.analysis.roi.stored import roi_stored
from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest import load_graph
from circuit_atlas.queries.library import run_query
from circuit_atlas.store import CircuitStore

from helpers.cli import cypher_json, error_lines, run_cli
from helpers.data import SHARED_GRAPHS, bundled, needs_shared
from helpers.graphs import build, err, feat, logit, tok
from helpers.skips import skip_test

pytestmark = pytest.mark.backends("arcadedb", "neo4j")


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


# agglomerative clusters a similarity (cosines in [0, 1], every pair scored), not a sparse
# graph of edge weights, where two members of one block are mostly unjoined: it has its own
# planted test below.
SIMILARITY_METHODS = {"agglomerative"}


@pytest.mark.parametrize("method", sorted(set(METHODS) - SIMILARITY_METHODS))
@pytest.mark.parametrize("n, blocks, seed", [(240, 4, 0), (900, 8, 1), (2000, 6, 2)])
def test_every_method_recovers_planted_blocks(method, n, blocks, seed):
    matrix, truth = planted(n, blocks, seed)
    k = blocks if method == "spectral-sklearn" else None
    result = detect(planted_affinity(matrix), method, RoiParams(seed=3, k=k, max_k=10))
    assert adjusted_rand_score(truth, result.labels) >= 0.9
    assert result.quality["modularity"] > 0.3


@pytest.mark.parametrize("n, blocks, seed", [(240, 4, 0), (900, 8, 1)])
def test_agglomerative_recovers_planted_similarity_groups(n, blocks, seed):
    """Cosine-like similarities: ~0.7 within a group, ~0.1 across, noise ±0.15; cut at 0.5."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, blocks, n)
    same = truth[:, None] == truth[None, :]
    noise = rng.uniform(-0.15, 0.15, (n, n))
    similarity = np.clip(np.where(same, 0.7, 0.1) + (noise + noise.T) / 2, 0, 1)
    np.fill_diagonal(similarity, 0.0)
    result = detect(planted_affinity(sp.csr_matrix(similarity)), "agglomerative")
    assert adjusted_rand_score(truth, result.labels) == 1.0 and result.n_rois == blocks


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
    # nodes to group, but no edge between them: an error, not one singleton ROI per node
    lonely = build(
        "lonely",
        {"T0": tok(0), "F1": feat(0, 0, 1), "F2": feat(1, 0, 2), "L": logit(0, 9, 1.0)},
        [("T0", "F1", 1.0), ("F2", "L", 1.0)],
    )
    fresh_store.write_graph(lonely)
    with pytest.raises(CircuitAtlasError, match="nothing to group: graph 'lonely' has no edges"):
        roi_stored(fresh_store, ["lonely"], "leiden")
    other = load_graph(bundled("nobel-clt.json.gz"))
    fresh_store.write_graph(other)
    with pytest.raises(CircuitAtlasError, match="different transcoder sets .* --allow-mixed"):
        roi_stored(fresh_store, [graph.graph_id, other.graph_id], "leiden")
    elsewhere = graph.metadata.model_copy(update={"graph_id": "dollar-9b", "model": "gemma-2-9b"})
    fresh_store.write_graph(CircuitGraph(graph.nodes, graph.edges, elsewhere))
    with pytest.raises(
        CircuitAtlasError, match=r"different models \(gemma-2-2b, gemma-2-9b\).* --allow-mixed"
    ):
        roi_stored(fresh_store, [graph.graph_id, "dollar-9b"], "leiden")
    with pytest.raises(CircuitAtlasError, match=r"a graph is listed twice \(gemma-dollar\)"):
        roi_stored(fresh_store, [graph.graph_id, "dollar-9b", graph.graph_id], "leiden")
    with pytest.raises(CircuitAtlasError, match="--bootstrap resamples prompts, so it needs"):
        roi_stored(fresh_store, [graph.graph_id], "leiden", bootstrap=3)
    with pytest.raises(CircuitAtlasError, match="louvain does not take --k.*--resolution"):
        roi_stored(fresh_store, [graph.graph_id], "louvain", RoiParams(k=3))
    with pytest.raises(CircuitAtlasError, match="spectral-sklearn needs --k"):
        roi_stored(fresh_store, [graph.graph_id], "spectral-sklearn")
    assert fresh_store.query("MATCH (r:ROI) RETURN count(r) AS c") == [{"c": 0}]


@pytest.mark.slow
def test_cli_errors_for_a_graph_without_edges_and_options_that_cannot_apply(
    bolt_env, tmp_path: Path
):
    with gzip.open(bundled("nobel-clt.json.gz")) as file:
        document = json.load(file)
    document["links"] = []
    document["metadata"]["slug"] = "no-edges"
    path = tmp_path / "no-edges.json"
    path.write_text(json.dumps(document))
    run_cli("ingest", str(path), env=bolt_env, check=True)
    for args, message in [
        ((), "nothing to group: graph 'no-edges' has no edges between its 285 groupable"),
        (("--bootstrap", "2"), "--bootstrap resamples prompts, so it needs at least two graphs"),
    ]:  # the other refusals are tested on roi_stored (test_bad_input)
        result = run_cli("roi", "no-edges", *args, env=bolt_env)
        assert result.returncode == 1, result.stdout
        assert message in error_lines(result)[0]


def six_prompts() -> list[CircuitGraph]:
    """Features A, B, C (layers 0–1) occur together in prompts 0–2; D, E, F (layers 2–3) in
    prompts 3–5: two cross-prompt ROIs, whatever the method."""

    def active(layer: int, pos: int, index: int) -> dict:
        return {**feat(layer, pos, index), "activation": 1.0}

    first = {"T0": tok(0), "A": active(0, 0, 1), "B": active(0, 1, 2), "C": active(1, 2, 3)}
    second = {"T0": tok(0), "D": active(2, 0, 4), "E": active(2, 1, 5), "F": active(3, 2, 6)}
    groups = [(first, "ABC")] * 3 + [(second, "DEF")] * 3
    return [
        build(f"prompt{i}", nodes, [("T0", a, 1.0), (a, b, 2.0 + i), (b, c, 1.0 + i), (a, c, -1)])
        for i, (nodes, (a, b, c)) in enumerate(groups)
    ]


def test_run_id_changes_with_what_changes_the_result_only():
    graphs = six_prompts()
    two = cross_prompt_affinity(graphs, min_graphs=2)
    three = cross_prompt_affinity(graphs, min_graphs=3)
    first = detect(two, "louvain")
    assert (first.labels == detect(three, "louvain").labels).all()  # same ROIs here, but
    assert detect(three, "louvain").run_id != first.run_id  # --min-graphs changes the features
    assert detect(two, "louvain").run_id == first.run_id  # a rerun replaces the run
    ignored = RoiParams(max_k=3, binarize_quantile=0.9, embedding="laplacian")
    assert detect(two, "louvain", ignored).run_id == first.run_id  # louvain reads none of them
    assert detect(two, "louvain", RoiParams(resolution=0.5)).run_id != first.run_id
    assert detect(two, "sbm", RoiParams(max_k=3)).run_id != detect(two, "sbm").run_id
    assert first.used_params == {"seed": 0, "resolution": 1.0}
    with pytest.raises(CircuitAtlasError, match="leiden does not take --k"):
        detect(two, "leiden", RoiParams(k=2))


def test_block_models_on_a_few_features_skip_one_node_blocks():
    affinity = cross_prompt_affinity(six_prompts())
    for method in ("sbm", "dcsbm"):
        result = detect(affinity, method)  # K = 3..6 split a group of three: not fitted
        assert result.labels.tolist() == [0, 0, 0, 1, 1, 1]
        assert result.details["skipped_k"] == [3, 4, 5, 6] and sorted(result.details["bic"]) == [
            1,
            2,
        ]
    with pytest.raises(CircuitAtlasError, match="one-node block.*smaller --k"):
        detect(affinity, "sbm", RoiParams(k=5))


def test_features_without_activation_still_cooccur():
    graphs = six_prompts()
    for graph in graphs:
        graph.nodes["activation"] = np.nan  # some exporters leave it out
    affinity = cross_prompt_affinity(graphs, "cooccurrence")
    assert affinity.matrix.nnz == 12 and affinity.matrix.max() == 3.0


ROOT2 = np.sqrt(2.0)


def test_within_roi_decoder_cosine_by_hand():
    # ROI 0: (1,0), (0,1), (1,1): cosines 0, 1/√2, 1/√2 → mean √2/3.
    # ROI 1: (2,0), (−1,0): cosine −1.   ROI 2: one member → no pair, no value.
    vectors = np.array([[1, 0], [0, 1], [1, 1], [2, 0], [-1, 0], [3, 4]], dtype=float)
    labels = np.array([0, 0, 0, 1, 1, 2])
    per_roi, counts = within_roi_cosine(vectors, labels, 3)
    assert per_roi[:2] == pytest.approx([ROOT2 / 3, -1.0]) and np.isnan(per_roi[2])
    assert counts.tolist() == [3, 2, 1]

    decoders = decoders_from_arrays(
        np.array([0, 0, 1, 2, 2, 3]), np.array([1, 2, 3, 4, 5, 6]), vectors
    )
    ids = ("0|1", "0|2", "1|3", "2|4", "2|5", "3|6", "9|9")  # 9|9 has no vector
    cosine = decoder_cosine(ids, np.array([0, 0, 0, 1, 1, 2, 1]), 3, decoders)
    assert cosine.per_roi[:2] == pytest.approx([ROOT2 / 3, -1.0]) and cosine.per_roi[2] is None
    assert cosine.with_vector == [3, 2, 1] and cosine.missing == 1
    assert cosine.mean == pytest.approx((3 * ROOT2 / 3 + 2 * -1.0) / 5)  # weights 3 and 2
    with pytest.raises(CircuitAtlasError, match="none of the 2 features of this run has a"):
        decoder_cosine(("7|7", "8|8"), np.array([0, 0]), 1, decoders)


def test_cross_prompt_rois_report_decoder_cosine_and_skip_missing_features(tmp_path: Path):
    graphs = six_prompts()
    path = tmp_path / "decoders.npz"
    np.savez(
        path,
        schema_version=1,
        layer=np.array([0, 0, 1, 2, 2]),  # A B C D E; F (3|6) is missing
        feature=np.array([1, 2, 3, 4, 5]),
        vectors=np.array([[1, 0], [0, 1], [1, 1], [2, 0], [-1, 0]], dtype=np.float32),
        transcoder_set=np.array("toy"),
    )
    decoders = load_decoders(path)
    result = detect(cross_prompt_affinity(graphs), "leiden", decoders=decoders)
    assert result.members().groupby("roi")["id"].apply(list).tolist() == [
        ["0|1", "0|2", "1|3"],
        ["2|4", "2|5", "3|6"],
    ]
    assert result.decoder is not None
    assert result.decoder.per_roi == pytest.approx([ROOT2 / 3, -1.0])
    assert result.decoder.missing == 1 == result.quality["decoder_features_missing"]
    assert result.quality["decoder_cosine"] == pytest.approx((ROOT2 - 2.0) / 5)
    quotient = quotient_graph(result, graphs, "q")
    text = roi_html(result, quotient, written=False)
    assert "Decoder directions" in text and "1 of 6 features had no vector" in text
    assert "0.471" in text and "-1.000" in text
    no_decoders = roi_html(detect(cross_prompt_affinity(graphs), "leiden"), quotient, written=False)
    assert "No decoder directions were given" in no_decoders
    with pytest.raises(CircuitAtlasError, match="decoder directions apply to cross-prompt"):
        detect(graph_affinity(graphs[0]), "leiden", decoders=decoders)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"schema_version": 2}, "field 'schema_version' must be 1"),
        ({"vectors": None}, "missing field.s. vectors"),
        ({"vectors": np.zeros((2, 3))}, "field 'vectors' row 0 is all zero"),
        ({"vectors": np.ones((3, 3))}, r"field 'vectors' must have shape \(2, d\)"),
        ({"feature": np.array([5, 5]), "layer": np.array([1, 1])}, "lists feature 1|5 twice"),
        ({"layer": np.array([0.0, 1.0])}, "field 'layer' must be a 1-d integer array"),
        ({"colour": np.array("red")}, "unknown field.s. colour"),
    ],
)
def test_decoder_file_errors_name_the_file_and_the_field(tmp_path: Path, fields, message):
    arrays = {
        "schema_version": 1,
        "layer": np.array([0, 1]),
        "feature": np.array([5, 6]),
        "vectors": np.ones((2, 3)),
        **fields,
    }
    path = tmp_path / "bad.npz"
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    with pytest.raises(CircuitAtlasError, match=f"^{path}: .*{message}"):
        load_decoders(path)


def test_decoders_of_another_transcoder_set_are_refused(tmp_path: Path):
    decoders = decoders_from_arrays(
        np.array([0]), np.array([1]), np.ones((1, 2)), "d.npz", transcoder_set="mine"
    )
    with pytest.raises(CircuitAtlasError, match="d.npz: field 'transcoder_set' is 'mine' but"):
        decoders.check_graphs(["toy", "toy"], ["mine", "theirs"])
    decoders.check_graphs(["toy"], ["mine"])  # a match passes


@pytest.mark.slow
def test_decoder_cosine_from_the_cli_is_printed_and_stored(bolt_env, tmp_path: Path):
    names = ("nobel-clt.json.gz", "bee-insect-clt.json.gz")
    run_cli("ingest", *(str(bundled(n)) for n in names), env=bolt_env, check=True)
    graphs = [load_graph(bundled(n)) for n in names]
    ids = cross_prompt_affinity(graphs, "effective").ids
    given = ids[1:]  # the first shared feature has no vector
    vectors = np.random.default_rng(0).normal(size=(len(given), 5))
    layer, feature = np.array([[int(x) for x in f.split("|")] for f in given]).T
    path = tmp_path / "decoders.npz"
    np.savez(
        path,
        schema_version=1,
        layer=layer,
        feature=feature,
        vectors=vectors,
        model=np.array("gemma-2-2b"),
        transcoder_set=np.array("mntss/clt-gemma-2-2b-2.5M"),
    )
    sources = [g.graph_id for g in graphs]
    out = run_cli("roi", *sources, "--affinity", "effective", "--method", "louvain",
                  "--decoders", str(path), "--json", env=bolt_env, check=True)  # fmt: skip
    payload = json.loads(out.stdout)
    row = dict(zip(given, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)))
    expected, weights = [], []
    for roi in payload["rois"]:
        units = [row[m] for m in roi["members"] if m in row]
        pairs = [float(a @ b) for a, b in combinations(units, 2)]
        expected.append(float(np.mean(pairs)) if pairs else None)
        weights.append(len(units))
    cosine = payload["decoder_cosine"]
    assert cosine["missing"] == 1 and cosine["with_vector"] == weights
    assert [v is None for v in cosine["per_roi"]] == [v is None for v in expected]
    assert [v for v in cosine["per_roi"] if v is not None] == pytest.approx(
        [v for v in expected if v is not None]
    )
    scored = [(v, w) for v, w in zip(expected, weights) if v is not None]
    assert payload["quality"]["decoder_cosine"] == pytest.approx(
        sum(v * w for v, w in scored) / sum(w for _, w in scored)
    )
    stored = cypher_json(
        bolt_env,
        "MATCH (r:ROI {run_id: $run}) RETURN r.index AS roi, r.decoder_cosine AS cosine "
        "ORDER BY roi",
        run=payload["run_id"],
    )
    assert [r["cosine"] is None for r in stored] == [v is None for v in expected]
    assert [r["cosine"] for r in stored if r["cosine"] is not None] == pytest.approx(
        [v for v in expected if v is not None]
    )
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, schema_version=1, layer=layer, feature=feature, vectors=vectors,
             transcoder_set=np.array("gemmascope-transcoder-16k"))  # fmt: skip
    refused = run_cli("roi", *sources, "--decoders", str(wrong), env=bolt_env)
    assert refused.returncode == 1
    assert "field 'transcoder_set' is 'gemmascope-transcoder-16k'" in error_lines(refused)[0]
    report = tmp_path / "unstored.html"
    run_cli("roi", *sources, "--method", "sbm", "--no-write", "--report", str(report),
            env=bolt_env, check=True)  # fmt: skip
    text = report.read_text()
    assert "not stored (computed with <code>--no-write</code>)" in text
    assert "Model selection" in text


def render_in_chromium(page: Path, tmp_path: Path) -> str:
    """The DOM headless Chromium builds from ``page`` (the flags the issue names)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        skip_test("Chromium is not installed (Debian package 'chromium')")
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
    page.write_text(roi_html(single, quotient_graph(single, [graph], "q"), written=False))
    text = page.read_text()
    assert text.count("data:image/png;base64,") == 3 and "src='http" not in text
    assert "Top members per ROI" in text and result.n_rois == 4
    dom = render_in_chromium(page, tmp_path)
    assert "Quality and stability" in dom and "Quotient graph" in dom


def test_report_shows_model_selection_and_whether_the_quotient_was_stored(monkeypatch):
    from circuit_atlas.analysis.roi import algorithms as methods
    from circuit_atlas.analysis.roi.report import model_selection_html

    graph = load_graph(bundled("dollar.json.gz"))
    result = detect(graph_affinity(graph), "sbm", RoiParams(max_k=4))
    quotient = quotient_graph(result, [graph], "q")
    unstored = roi_html(result, quotient, written=False)
    assert "not stored (computed with <code>--no-write</code>)" in unstored
    assert "stored as graph" not in unstored
    assert "Model selection" in unstored and unstored.count("◀") == 1  # the chosen K
    assert "<td>4</td>" in unstored  # one BIC row per K = 1..4
    assert "binarised at the 0.5 quantile of the non-zero affinities: " in unstored
    assert f"{result.details['binary_edges']:,} undirected binary edges" in unstored
    assert "graspologic's estimators on the dense binary matrix" in unstored
    assert "stored as graph <code>q</code>" in roi_html(result, quotient, written=True)
    monkeypatch.setattr(methods, "DENSE_LIMIT", 100)
    sparse = detect(graph_affinity(graph), "dcsbm", RoiParams(max_k=3))
    assert "Karrer–Newman Poisson DCSBM from sparse block edge counts" in model_selection_html(
        sparse
    )


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
    rows = pd.read_json(io.StringIO(members.stdout))
    assert rows["graphs"].min() >= 2  # every member occurs in at least --min-graphs prompts
    assert all(len(p) == g for p, g in zip(rows["prompts"], rows["graphs"]))
    assert rows["prompts"][0][0].startswith("<bos>The saying goes:")
    again = run_cli("roi", "--contains", "clt-hp", "--method", "leiden", "--bootstrap", "2",
                    env=bolt_env, check=True)  # fmt: skip
    assert again.stdout.split()[1].rstrip(":") == run_id
    counted = run_cli("cypher", "MATCH (r:ROI) RETURN count(r) AS n", "--format", "csv",
                      env=bolt_env, check=True)  # fmt: skip
    assert int(counted.stdout.splitlines()[1]) == rows["roi"].nunique()
    text = report.read_text()
    assert "Adjacency sorted by ROI" in text and f"stored as graph <code>{run_id}" in text
    dom = render_in_chromium(report, tmp_path)
    for heading in ("Quality and stability", "Decoder directions", "Top members per ROI"):
        assert heading in dom
    assert "No decoder directions were given" in dom  # the Neuronpedia files carry none
    assert "stability_ari_bootstrap" in dom
    mixed = run_cli("roi", "account-clt-hp", "--contains", "clt-hp", env=bolt_env)
    assert mixed.returncode == 1 and "not both" in error_lines(mixed)[0]


def test_sparse_sbm_likelihood_equals_graspologic():
    from graspologic.models import SBMEstimator

    from circuit_atlas.analysis.roi.algorithms import sparse_sbm_log_likelihood

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
    from circuit_atlas.analysis.roi import algorithms as methods

    monkeypatch.setattr(methods, "DENSE_LIMIT", 100)  # force the sparse path on small graphs
    matrix, truth = planted(900, 8, 1)
    result = detect(planted_affinity(matrix), method)
    assert result.details["likelihood"].startswith("sparse")
    assert adjusted_rand_score(truth, result.labels) >= 0.9
    rng = np.random.default_rng(5)
    noise = sp.csr_matrix((rng.random((300, 300)) < 0.2).astype(float))
    assert detect(planted_affinity(noise), method).n_rois == 1


@pytest.mark.slow
def test_graspologic_is_imported_lazily():
    """graspologic (with numba, hyppo, …) takes seconds to import: only the methods that fit
    with it may import it, never the CLI or the ROI package on their way in."""
    code = (
        "import sys, circuit_atlas.cli, circuit_atlas.cli.roi\n"
        "from circuit_atlas.analysis.roi import (affinity, decoders, algorithms, detect, quality,\n"
        "    quotient, report, stored)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'graspologic'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)  # fmt: skip
    assert result.stdout.strip() == "[]"
