"""Saved views in Neuronpedia files: named subgraphs with supernodes, and ROI runs as automatic
supernodes, written into ``qParams`` by ``export --format neuronpedia`` and read back."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from circuit_atlas.analysis.roi.algorithms import RoiParams
from circuit_atlas.analysis.roi.stored import roi_stored
from circuit_atlas.analysis.scores.stored import saved_subgraph, score_stored_graph
from circuit_atlas.ingest import load_graph
from circuit_atlas.store import CircuitStore

from helpers.cli import error_lines, run_cli
from helpers.data import SHARED_GRAPHS, bundled, needs_shared

pytestmark = pytest.mark.backends("arcadedb", "neo4j")

SAVED_VIEW = SHARED_GRAPHS / "neuronpedia" / "demos" / "gemma-small-big-en_2025-11-13T10-16-02-770Z.json"  # fmt: skip  # noqa: E501


@needs_shared()
def test_a_saved_subgraph_goes_back_into_the_file_and_scores_the_same(
    bolt_env: dict[str, str], tmp_path: Path
):
    """import → score --saved → export --subgraph saved → import: the same pins, supernodes and
    subgraph scores."""
    original = json.loads(SAVED_VIEW.read_text())["qParams"]
    run_cli("ingest", str(SAVED_VIEW), "--graph-id", "big", env=bolt_env, check=True)
    run_cli("score", "big", "--saved", env=bolt_env, check=True)
    listed = run_cli("subgraphs", "big", "--format", "json", env=bolt_env, check=True)
    (row,) = json.loads(listed.stdout)
    assert row["name"] == "saved" and row["supernodes"].startswith('Output "big" or "large" (2)')
    out = tmp_path / "big.json"
    run_cli("export", "big", "--format", "neuronpedia", "--subgraph", "saved", "--out", str(out),
            env=bolt_env, check=True)  # fmt: skip
    written = json.loads(out.read_text())["qParams"]
    as_sets = {g[0]: set(g[1:]) for g in written["supernodes"]}
    assert as_sets == {g[0]: set(g[1:]) for g in original["supernodes"]}
    assert [g[0] for g in written["supernodes"]] == [g[0] for g in original["supernodes"]]
    grouped = {node for group in as_sets.values() for node in group}
    assert grouped <= set(written["pinnedIds"]) <= set(original["pinnedIds"])
    again = load_graph(out, graph_id="again")
    pins, groups = saved_subgraph(again)
    assert set(pins) == set(written["pinnedIds"]) and len(groups) == 5
    run_cli("ingest", str(out), "--graph-id", "again", env=bolt_env, check=True)
    first = json.loads(run_cli("score", "big", "--saved", "--no-write", "--format", "json",
                               env=bolt_env, check=True).stdout)  # fmt: skip
    second = json.loads(run_cli("score", "again", "--saved", "--no-write", "--format", "json",
                                env=bolt_env, check=True).stdout)  # fmt: skip
    saved_rows = [
        [(r["replacement"], r["completeness"]) for r in doc["rows"] if r["name"] == "saved"]
        for doc in (first, second)
    ]
    assert saved_rows[0] == pytest.approx(saved_rows[1], abs=1e-9)


def test_supernodes_from_the_command_line_and_their_errors(
    bolt_env: dict[str, str], tmp_path: Path
):
    dollar = bundled("dollar.json.gz")
    run_cli("ingest", str(dollar), "--graph-id", "d", env=bolt_env, check=True)
    top = json.loads(run_cli("score", "d", "--pin-top", "3", "--no-write", "--format", "json",
                             env=bolt_env, check=True).stdout)  # fmt: skip
    (pins,) = [r["pinned"] for r in top["rows"] if r["name"] == "top 3"]
    args = [arg for key in pins for arg in ("--pinned", key)]
    group = f"two of them={pins[0]},{pins[1]}"
    run_cli("score", "d", *args, "--name", "mine", "--supernode", group, env=bolt_env, check=True)
    out = tmp_path / "d.json"
    run_cli("export", "d", "--format", "neuronpedia", "--subgraph", "mine", "--out", str(out),
            env=bolt_env, check=True)  # fmt: skip
    q_params = json.loads(out.read_text())["qParams"]
    assert len(q_params["pinnedIds"]) == 3 and q_params["supernodes"][0][0] == "two of them"
    assert len(q_params["supernodes"][0]) == 3
    page = tmp_path / "d.html"
    shown = run_cli("view", "d", "--subgraph", "mine", "--out", str(page), env=bolt_env, check=True)
    assert "3 pinned, 1 supernodes" in shown.stdout
    text = page.read_text()
    assert all(key in text for key in pins) and "two of them" in text
    assert not re.search(r"(src|href)=[\"']?https?:", text)  # nothing to fetch
    bad = run_cli("score", "d", "--pinned", pins[0], "--supernode", "oops", env=bolt_env)
    assert bad.returncode == 1 and "LABEL=NODE" in error_lines(bad)[-1]
    gone = run_cli("export", "d", "--format", "neuronpedia", "--subgraph", "nope", "--out",
                   str(out), env=bolt_env)  # fmt: skip
    assert gone.returncode == 1 and "no subgraph 'nope'" in error_lines(gone)[-1]
    both = run_cli("export", "d", "--format", "neuronpedia", "--subgraph", "mine", "--roi", "r",
                   "--out", str(out), env=bolt_env)  # fmt: skip
    assert both.returncode != 0 and "not both" in both.stderr


def test_an_roi_run_opens_in_neuronpedia_as_supernodes(bolt_env: dict[str, str], tmp_path: Path):
    """Automatic supernodes: Neuronpedia's grouping (edge-profile cosine, agglomerative) on the
    dollar graph, exported as one supernode per ROI, every member pinned."""
    graph = load_graph(bundled("dollar.json.gz"))
    run_cli("ingest", str(bundled("dollar.json.gz")), "--graph-id", "d", env=bolt_env, check=True)
    shown = run_cli("roi", "d", "--affinity", "edge-profile", "--method", "agglomerative",
                    "--format", "json", env=bolt_env, check=True)  # fmt: skip
    run = json.loads(shown.stdout)
    assert len(run["rois"]) > 1 and run["params"] == {"k": None, "min_similarity": 0.5}
    out = tmp_path / "rois.json"
    run_cli("export", "d", "--format", "neuronpedia", "--roi", run["run_id"], "--out", str(out),
            env=bolt_env, check=True)  # fmt: skip
    q_params = json.loads(out.read_text())["qParams"]
    assert [len(g) - 1 for g in q_params["supernodes"]] == [len(r["members"]) for r in run["rois"]]
    assert all(g[0].startswith(f"ROI {i}") for i, g in enumerate(q_params["supernodes"]))
    members = {node for g in q_params["supernodes"] for node in g[1:]}
    assert members == set(q_params["pinnedIds"])
    assert load_graph(out).n_nodes == graph.n_nodes  # a valid file, the graph as stored
    page = tmp_path / "rois.html"
    shown = run_cli("view", "d", "--roi", run["run_id"], "--out", str(page), env=bolt_env,
                    check=True)  # fmt: skip
    assert f"{len(run['rois'])} rois" in shown.stdout and "ROI 0" in page.read_text()
    run_cli("ingest", str(bundled("bee-insect-clt.json.gz")), "--graph-id", "bee", env=bolt_env,
            check=True)  # fmt: skip
    elsewhere = run_cli("export", "bee", "--format", "neuronpedia", "--roi", run["run_id"],
                        "--out", str(out), env=bolt_env)  # fmt: skip
    assert elsewhere.returncode == 1 and "no members in graph 'bee'" in error_lines(elsewhere)[-1]
    unknown = run_cli("export", "d", "--format", "neuronpedia", "--roi", "roi-x", "--out",
                      str(out), env=bolt_env)  # fmt: skip
    assert unknown.returncode == 1 and "no ROI run 'roi-x'" in error_lines(unknown)[-1]


def test_an_roi_run_of_a_subgraph_groups_only_its_pinned_nodes(fresh_store: CircuitStore):
    graph = load_graph(bundled("dollar.json.gz"))
    fresh_store.write_graph(graph)
    report = score_stored_graph(fresh_store, graph.graph_id, pin_top=[12])
    pinned = set(report.report.row("subgraph", "top 12").pinned)
    stored = roi_stored(fresh_store, [graph.graph_id], "agglomerative", RoiParams(k=3),
                        "edge-profile", subgraph="top 12")  # fmt: skip
    assert set(stored.result.affinity.ids) == pinned and stored.result.n_rois == 3
    assert stored.result.affinity.kind == "edge-profile[top 12]"
