"""Killing an ingest mid-write leaves no visible partial graph; re-ingest then works.

Both write paths are killed with SIGKILL (no cleanup code runs). Both write behind the
'loading' status, which readers never see: the Bolt path commits batch by batch, and what a
killed writer committed is removed by the next command that opens the store on that host (or
taken over by the next writer of the id); the bulk path's leftovers go when the local server
next starts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from circuit_atlas.testing.synthetic import synthetic_neuronpedia

from helpers.cli import run_cli
from helpers.processes import kill_when

pytestmark = [pytest.mark.slow, pytest.mark.backends("arcadedb", "neo4j")]


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.json"
    path.write_text(json.dumps(synthetic_neuronpedia(3000, 300_000, slug="big-graph")))
    return path


def ingest_and_kill(path: Path, env: dict[str, str], marker: str) -> None:
    """Start an ingest, wait until its write has begun (progress bar), then SIGKILL it."""
    kill_when(["ingest", str(path)], env, marker)


def counts(env: dict[str, str]) -> tuple[list, int]:
    graphs = json.loads(run_cli("graphs", "--format", "json", env=env, check=True).stdout)
    nodes = json.loads(
        run_cli(
            "cypher", "MATCH (n:Node) RETURN count(n) AS c", "--format", "json", env=env, check=True
        ).stdout
    )[0]["c"]
    return graphs, nodes


def test_killed_bolt_ingest_leaves_nothing(bolt_env, big_file: Path):
    ingest_and_kill(big_file, bolt_env, "write big-graph")
    assert counts(bolt_env) == ([], 0)
    result = run_cli("ingest", str(big_file), env=bolt_env, check=True)
    assert "created" in result.stdout
    graphs, nodes = counts(bolt_env)
    assert [g["graph_id"] for g in graphs] == ["big-graph"] and nodes == 3000


def test_killed_bulk_ingest_leaves_nothing(big_file: Path, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
    env["CIRCUIT_ATLAS_DATA_DIR"] = str(tmp_path / "local")
    ingest_and_kill(big_file, env, "bulk big-graph")
    assert counts(env) == ([], 0)
    run_cli("ingest", str(big_file), env=env, check=True)
    twice = run_cli("ingest", str(big_file), env=env, check=True)
    assert "unchanged" in twice.stdout
    graphs, nodes = counts(env)
    assert [(g["graph_id"], g["edges"]) for g in graphs] == [("big-graph", 300_000)]
    assert nodes == 3000
