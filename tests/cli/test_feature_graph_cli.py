"""``circuit-atlas attribute --transcoders``: a feature graph stored, scored, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import cypher_json, error_lines, run_cli
from helpers.dictionaries import random_clt, random_transcoders, write_circuit_tracer_set, write_clt
from helpers.models import tiny_model, write_tiny_job


@pytest.fixture
def job(tmp_path: Path) -> tuple[Path, Path, Path]:
    config, task = write_tiny_job(tmp_path)
    transcoders = write_circuit_tracer_set(
        tmp_path / "transcoders", random_transcoders(tiny_model(), seed=2)
    )
    return config, task, transcoders


@pytest.mark.slow
def test_a_feature_graph_is_stored_scored_and_exported(bolt_env, job, tmp_path):
    config, _, transcoders = job
    result = run_cli(
        "attribute", "--model", str(config), "--transcoders", str(transcoders),
        "--tokens", "1,7,3,12,5,9", "--graph-id", "tiny-features", "--batch-size", "4",
        env=bolt_env, check=True,
    )  # fmt: skip
    assert "tiny-features (created)" in result.stdout
    kinds = cypher_json(
        bolt_env,
        "MATCH (n:Node {graph_id: $g}) RETURN n.kind AS kind, count(*) AS n ORDER BY kind",
        g="tiny-features",
    )
    counts = {row["kind"]: row["n"] for row in kinds}
    assert counts["error"] == 2 * 6 and counts["embedding"] == 6
    assert counts["feature"] > 10 and 1 <= counts["logit"] <= 10
    score = run_cli("score", "tiny-features", "--format", "json", env=bolt_env, check=True)
    assert "replacement" in score.stdout
    again = run_cli(
        "attribute", "--model", str(config), "--transcoders", str(transcoders),
        "--tokens", "1,7,3,12,5,9", "--graph-id", "tiny-features", env=bolt_env, check=True,
    )  # fmt: skip
    assert "tiny-features (unchanged)" in again.stdout  # batch size does not change the graph
    out = tmp_path / "tiny.pt"
    run_cli(
        "export", "tiny-features", "--format", "circuit-tracer-pt", "--out", str(out),
        env=bolt_env, check=True,
    )  # fmt: skip
    run_cli("ingest", str(out), "--graph-id", "tiny-reimported", env=bolt_env, check=True)
    both = cypher_json(
        bolt_env,
        "MATCH (a:Node)-[e:EDGE]->() WHERE a.graph_id IN ['tiny-features', 'tiny-reimported'] "
        "RETURN a.graph_id AS g, count(e) AS edges ORDER BY g",
    )
    assert both[0]["edges"] == both[1]["edges"] > 100
    json_out = tmp_path / "tiny.json"
    exported = run_cli(
        "export", "tiny-features", "--format", "neuronpedia", "--out", str(json_out),
        env=bolt_env, check=True,
    )  # fmt: skip
    assert "pruned 0.8/0.98" in exported.stdout
    document = json.loads(json_out.read_text())
    assert document["metadata"]["slug"] == "tiny-features"
    assert document["metadata"]["pruning_settings"] == {
        "node_threshold": 0.8,
        "edge_threshold": 0.98,
    }
    assert 0 < len(document["links"]) < both[0]["edges"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "give exactly one of --task FILE (components) or --transcoders DIR"),
        (["--task", "TASK", "--transcoders", "TC"], "give exactly one of --task FILE"),
        (["--transcoders", "TC"], "give the prompt as exactly one of --prompt TEXT or --tokens"),
        (["--transcoders", "TC", "--tokens", "1,x"], "expected token ids such as '1,7,3'"),
        (["--transcoders", "NOWHERE", "--tokens", "1,2"], "no such folder"),
        (["--transcoders", "TC", "--tokens", "1,99"], "token id(s) [99] outside"),
        (["--transcoders", "BADCLT", "--tokens", "1,2"], "W_dec_1.safetensors: no such file"),
    ],
)
def test_bad_feature_graph_requests_get_one_clear_error(bolt_env, job, extra, message):
    config, task, transcoders = job
    bad_clt = write_clt(task.parent / "bad-clt", random_clt(tiny_model()))
    (bad_clt / "W_dec_1.safetensors").unlink()
    swap = {
        "TASK": str(task),
        "TC": str(transcoders),
        "NOWHERE": str(task.parent / "none"),
        "BADCLT": str(bad_clt),
    }
    args = [swap.get(a, a) for a in extra]
    result = run_cli("attribute", "--model", str(config), *args, env=bolt_env)
    assert result.returncode != 0
    assert message in " ".join(error_lines(result)) or message in result.stderr


def test_a_cross_layer_transcoder_graph_is_stored(bolt_env, job, tmp_path):
    config, _, _ = job
    clt = write_clt(tmp_path / "clt", random_clt(tiny_model(), seed=3))
    result = run_cli(
        "attribute", "--model", str(config), "--transcoders", str(clt),
        "--tokens", "1,7,3,12,5,9", "--graph-id", "tiny-clt", env=bolt_env, check=True,
    )  # fmt: skip
    assert "tiny-clt (created)" in result.stdout
    layers = cypher_json(
        bolt_env,
        "MATCH (s:Node {graph_id: $g, kind: 'feature', layer: 0})-[:EDGE]->"
        "(t:Node {kind: 'feature', layer: 1}) RETURN count(*) AS n",
        g="tiny-clt",
    )
    assert layers[0]["n"] > 0
