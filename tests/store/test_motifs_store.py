"""Motif censuses written back as :MotifStat nodes, through the CLI as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from circuit_atlas.analysis.motifs.census import binary_edges, motif_census
from circuit_atlas.ingest import load_graph

from helpers.cli import cypher_json, error_lines, run_cli
from helpers.data import bundled

pytestmark = pytest.mark.backends("arcadedb", "neo4j")

STATS = "MATCH (m:MotifStat)-[:STAT_OF]->(g:Graph) RETURN g.graph_id AS g, m.motif AS motif, m.null_model AS null, m.observed AS observed, m.z AS z, m.n_samples AS n ORDER BY g, null, motif"  # noqa: E501


def test_motifs_are_counted_stored_replaced_and_deleted(bolt_env: dict[str, str], tmp_path: Path):
    for name in ("dollar.json.gz", "bee-insect-clt.json.gz"):
        run_cli("ingest", str(bundled(name)), env=bolt_env, check=True)
    bee = load_graph(bundled("bee-insect-clt.json.gz"))
    report = tmp_path / "motifs.html"
    shown = run_cli("motifs", "--contains", "e", "--null", "erdos-renyi", "--null",
                    "layer-position", "--samples", "3", "--report", str(report), "--format",
                    "json", env=bolt_env, check=True)  # fmt: skip
    summary = json.loads(shown.stdout)
    assert {(r["motif"], r["null_model"]) for r in summary} == {
        (m, n) for m in ("feed_forward_loop", "chain", "fan_out", "fan_in", "cycle")
        for n in ("erdos-renyi", "layer-position")
    }  # fmt: skip
    assert all(r["graphs"] == 2 for r in summary)
    assert "Motifs: 2 graphs" in report.read_text()
    rows = cypher_json(bolt_env, STATS)
    assert len(rows) == 2 * 2 * 5 and {r["n"] for r in rows} == {3}
    counts = motif_census(binary_edges(bee))
    bee_rows = {(r["motif"], r["null"]): r["observed"] for r in rows if r["g"] == bee.graph_id}
    assert all(bee_rows[(m, "erdos-renyi")] == counts[m] for m in counts)

    run_cli(
        "motifs", bee.graph_id, "--null", "degree", "--samples", "2", env=bolt_env, check=True
    )  # fmt: skip  (a new census of a graph replaces its old one)
    rows = cypher_json(bolt_env, STATS)
    assert {r["null"] for r in rows if r["g"] == bee.graph_id} == {"degree"}
    enrichment = run_cli("query", "motif_enrichment", "--param", "motif=feed_forward_loop",
                         "--format", "json", env=bolt_env, check=True)  # fmt: skip
    assert {r["null_model"]: r["graphs"] for r in json.loads(enrichment.stdout)} == {
        "degree": 1, "erdos-renyi": 1, "layer-position": 1
    }  # fmt: skip
    run_cli("rm", bee.graph_id, env=bolt_env, check=True)
    assert {r["g"] for r in cypher_json(bolt_env, STATS)} == {"gemma-dollar"}


def test_motif_errors_are_one_line(bolt_env: dict[str, str]):
    missing = run_cli("motifs", "no-such-graph", env=bolt_env)
    assert missing.returncode == 1 and "no graph 'no-such-graph'" in error_lines(missing)[-1]
    run_cli("ingest", str(bundled("bee-insect-clt.json.gz")), env=bolt_env, check=True)
    few = run_cli("motifs", "--contains", "bee", "--samples", "1", env=bolt_env)
    assert few.returncode == 2 and "--samples" in few.stderr
