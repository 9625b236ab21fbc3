"""Attribution methods against independent ground truth on small random models.

Every number here is checked against a reference computed with TransformerLens directly
(``tests/helpers/models.py``): autograd for the linear EAP estimate, one hook per edge for
exact patching, and the corrupted/clean runs for patching everything/nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.ingest.attribution.component_graph import ComponentGraph
from circuit_atlas.ingest.attribution.engine import patched_metric, record_outputs
from circuit_atlas.ingest.attribution.methods import METHODS, attribute
from circuit_atlas.ingest.attribution.metrics import get_metric
from circuit_atlas.ingest.attribution.tasks import Batch
from circuit_atlas.ingest.eap_ig import component_key

from helpers.models import (
    TINY_CONFIG,
    input_gradients,
    node_outputs,
    output_gradients,
    patch_one_edge,
    random_task,
    tiny_model,
)

torch.set_num_threads(1)

MODELS = {"attention-only": dict(attn_only=True), "with-mlps": dict(attn_only=False)}


@pytest.fixture(scope="module", params=list(MODELS))
def model(request):
    return tiny_model(**MODELS[request.param])


def _single_batch(task) -> Batch:
    return Batch.of(task.examples, pad_id=0)


# ------------------------------------------------------------------ the component graph
def test_gpt2_shaped_graph_has_the_standard_32491_edges():
    graph = ComponentGraph(n_layers=12, n_heads=12)
    assert graph.n_edges == 32_491
    assert int(graph.edge_mask.sum()) == 32_491
    assert len(graph.node_names) == 1 + 144 + 12 + 1


def test_a_gpt2_shaped_model_built_from_a_config_gets_that_graph():
    model = tiny_model(n_layers=12, n_heads=12, d_model=24, d_head=2, d_mlp=8)
    assert ComponentGraph.of(model).n_edges == 32_491


def test_edge_names_are_unique_and_parse_back_to_distinct_nodes():
    """Peer-tool bug made impossible: no two nodes or edges share an id."""
    graph = ComponentGraph(n_layers=3, n_heads=4)
    forward, backward = graph.edges()
    names = [graph.edge_name(f, k) for f, k in zip(forward, backward)]
    assert len(set(names)) == len(names) == graph.n_edges
    keys = [component_key(n) for n in graph.node_names]
    assert len(set(keys)) == len(keys)


def test_parallel_blocks_feed_no_mlp_from_its_own_layer():
    sequential = ComponentGraph(2, 2)
    parallel = ComponentGraph(2, 2, parallel_attn_mlp=True)
    assert parallel.n_edges == sequential.n_edges - 2 * 2
    assert not parallel.edge_mask[
        parallel.head_forward_slots(0), parallel.mlp_backward_slot(0)
    ].any()


# ------------------------------------------------------------------ ground truth
def test_eap_equals_the_autograd_linear_estimate(model):
    """EAP = Σ (a_corr − a_clean)·∂m/∂x for every edge, computed independently (≤ 1e-5)."""
    task = random_task()
    result = attribute(model, task, "eap", batch_size=2, progress=False)
    batch = _single_batch(task)
    clean, corrupted = node_outputs(model, batch.clean), node_outputs(model, batch.corrupted)
    grads = input_gradients(model, batch)
    graph = result.graph
    worst = 0.0
    for f, k in zip(*graph.edges()):
        source = graph.forward_names[f]
        target, channel = graph.backward_names[k], graph.backward_channels[k]
        name, head = _hook(model, target, channel)
        full = grads[name]
        assert full is not None, name
        grad = full if head is None else full[:, :, head]
        expected = float(((corrupted[source] - clean[source]) * grad).sum())
        worst = max(worst, abs(result.scores[f, k] - expected))
    assert worst <= 1e-5


def test_exact_equals_brute_force_edge_patching(model):
    task = random_task(n=3)
    result = attribute(model, task, "exact", batch_size=2, progress=False)
    batch = _single_batch(task)
    clean, corrupted = node_outputs(model, batch.clean), node_outputs(model, batch.corrupted)
    graph = result.graph
    with torch.no_grad():
        from helpers.models import logit_diff

        base = logit_diff(model.model(batch.clean), batch).sum()
    for f, k in zip(*graph.edges()):
        source = graph.forward_names[f]
        delta = corrupted[source] - clean[source]
        value = patch_one_edge(
            model, batch, delta, graph.backward_names[k], graph.backward_channels[k]
        )
        assert result.scores[f, k] == pytest.approx(float(value - base), abs=1e-8)


def test_indirect_effects_through_the_residual_stream_are_not_zeroed(model):
    """Peer-tool bug made impossible: input→layer-1 edges carry their own (nonzero) effect."""
    task = random_task(n=3)
    result = attribute(model, task, "exact", batch_size=3, progress=False)
    graph = result.graph
    layer1 = graph.head_backward_slots(1, "q")
    assert np.abs(result.scores[0, layer1]).min() > 0


def test_patching_everything_gives_the_corrupted_metric_and_nothing_the_clean(model):
    task = random_task()
    batch = _single_batch(task)
    graph = ComponentGraph.of(model)
    counterfactual, _ = record_outputs(model, graph, batch.corrupted, batch)
    metric = get_metric("logit_diff")

    def measure(logits):
        return metric(logits, batch, None)

    everything = torch.from_numpy(graph.edge_mask)
    patched_all = patched_metric(model, graph, batch, counterfactual, everything, measure)
    patched_none = patched_metric(model, graph, batch, counterfactual, ~everything, measure)
    with torch.no_grad():
        assert torch.allclose(patched_all, measure(model.model(batch.corrupted)), atol=1e-5)
        assert torch.allclose(patched_none, measure(model.model(batch.clean)), atol=1e-5)


def ig_errors(rule: str, steps: tuple[int, ...]) -> tuple[list[float], float]:
    """|Σ input-node edge scores − (m(cf) − m(clean))| for each step count (IG completeness:
    patching every input edge is exactly that difference)."""
    model = tiny_model(seed=3)
    task = random_task(n=4, seed=5)
    exact_total = 0.0
    errors = []
    for m in steps:
        result = attribute(
            model, task, "eap-ig-inputs", ig_steps=m, ig_rule=rule, batch_size=4, progress=False
        )
        exact_total = (result.counterfactual_metric - result.clean_metric) * len(task.examples)
        errors.append(abs(result.scores[0].sum() - exact_total))
    return errors, abs(exact_total)


@pytest.mark.parametrize("rule", ["left", "right"])
def test_eap_ig_inputs_converges_to_exact_patching_of_the_input_edges(rule):
    """Left (the reference's) and right Riemann sums: error O(1/steps), halving with each
    doubling from 8 steps on (at 4 steps this model is not yet in that regime)."""
    errors, total = ig_errors(rule, (8, 16, 32, 64))
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < errors[0] / 4
    assert errors[-1] < 0.05 * total


def test_the_midpoint_rule_converges_fastest():
    """Midpoint's error falls at least as 1/steps² and sits below half of both one-sided sums'
    from 8 steps on; the defaults stay the reference's (hannamw/EAP-IG and MIB's numbers)."""
    steps = (8, 16, 32)
    midpoint, _ = ig_errors("midpoint", steps)
    for rule in ("left", "right"):
        other, _ = ig_errors(rule, steps)
        assert all(m < o / 2 for m, o in zip(midpoint, other)), (midpoint, other)
    assert midpoint[-1] < midpoint[0] / 12  # 4× the steps: ≥ 16× smaller if O(1/m²)


def test_one_ig_step_is_eap_with_the_right_rule_and_a_corrupted_gradient_with_the_left(model):
    task = random_task()
    eap = attribute(model, task, "eap", progress=False).scores
    right = attribute(model, task, "eap-ig-inputs", ig_steps=1, ig_rule="right", progress=False)
    np.testing.assert_allclose(right.scores, eap, atol=1e-10)
    left = attribute(model, task, "eap-ig-inputs", ig_steps=1, progress=False)
    assert left.settings["ig_rule"] == "left"
    assert not np.allclose(left.scores, eap)


def _edge_scores_from(model, graph, difference, grads) -> np.ndarray:
    """``Σ difference[source] · grads[input of target]`` for every edge of ``graph``."""
    out = np.zeros((graph.n_forward, graph.n_backward))
    for f, k in zip(*graph.edges()):
        name, head = _hook(model, graph.backward_names[k], graph.backward_channels[k])
        full = grads.get(name, torch.zeros(()))
        grad = full if head is None else full[:, :, head]
        out[f, k] = float((difference[graph.forward_names[f]] * grad).sum())
    return out


def test_eap_ig_activations_interpolates_one_sublayer_at_a_time(model):
    """As hannamw/EAP-IG defines it: for the input, each attention layer and each MLP in turn,
    that sublayer's output is a constant between corrupted and clean (α = k/m, k = 1 … m, the
    reference's rule) while the rest runs on the clean prompt; gradients at every node input are
    averaged over all sublayers × steps. Ground truth: retain_grad with that one hook."""
    task, steps = random_task(n=3), 2
    result = attribute(
        model, task, "eap-ig-activations", ig_steps=steps, batch_size=2, progress=False
    )
    assert result.settings["ig_rule"] == "right"
    batch = _single_batch(task)
    clean, corrupted = node_outputs(model, batch.clean), node_outputs(model, batch.corrupted)

    def stacked(outputs, layer):
        return torch.stack([outputs[f"a{layer}.h{h}"] for h in range(model.n_heads)], dim=2)

    sublayers = [("blocks.0.hook_resid_pre", clean["input"], corrupted["input"])]
    for layer in range(model.n_layers):
        sublayers.append(
            (f"blocks.{layer}.attn.hook_result", stacked(clean, layer), stacked(corrupted, layer))
        )
        if model.has_mlps:
            sublayers.append(
                (f"blocks.{layer}.hook_mlp_out", clean[f"m{layer}"], corrupted[f"m{layer}"])
            )
    total: dict[str, torch.Tensor] = {}
    for name, c, x in sublayers:
        for k in range(1, steps + 1):
            grads = input_gradients(model, batch, replace=(name, x + k / steps * (c - x)))
            for hook, grad in grads.items():
                if grad is not None:  # None: the replaced sublayer cut every path from it
                    total[hook] = total.get(hook, 0) + grad / (len(sublayers) * steps)
    difference = {node: corrupted[node] - clean[node] for node in clean}
    expected = _edge_scores_from(model, result.graph, difference, total)
    assert np.abs(result.scores - expected).max() <= 1e-9 * np.abs(expected).max()
    # not the old all-at-once estimator: that differs by far more than rounding
    eap = attribute(model, task, "eap", progress=False).scores
    assert not np.allclose(result.scores, eap, atol=1e-6)


@pytest.mark.parametrize("alpha_rule", [("midpoint", 0.5), ("right", 1.0)])
def test_partial_activations_are_the_gradient_of_edge_masks(model, alpha_rule):
    """One step at α: each score is ∂m/∂mask_fk with every edge mask at α (auto-circuit's mask
    gradient), checked by central differences of patching with fractional masks."""
    rule, alpha = alpha_rule
    task = random_task(n=3)
    result = attribute(
        model, task, "eap-ig-partial-activations", ig_steps=1, ig_rule=rule, batch_size=2,
        progress=False,
    )  # fmt: skip
    batch = _single_batch(task)
    graph = result.graph
    counterfactual, _ = record_outputs(model, graph, batch.corrupted, batch)
    metric = get_metric("logit_diff")

    def measure(logits):
        return metric(logits, batch, None)

    masks = torch.from_numpy(graph.edge_mask).double() * alpha
    forward, backward = graph.edges()
    picks = np.random.default_rng(0).choice(len(forward), size=20, replace=False)
    eps = 1e-5
    scale = np.abs(result.scores).max()
    for i in picks:
        f, k = int(forward[i]), int(backward[i])
        up, down = masks.clone(), masks.clone()
        up[f, k] += eps
        down[f, k] -= eps
        high = patched_metric(model, graph, batch, counterfactual, up, measure).sum()
        low = patched_metric(model, graph, batch, counterfactual, down, measure).sum()
        assert result.scores[f, k] == pytest.approx(float(high - low) / (2 * eps), abs=1e-7 * scale)


def test_partial_activations_at_alpha_zero_are_eap(model):
    task = random_task()
    eap = attribute(model, task, "eap", progress=False).scores
    left = attribute(model, task, "eap-ig-partial-activations", ig_steps=1, progress=False)
    np.testing.assert_allclose(left.scores, eap, atol=1e-10)


@pytest.mark.parametrize("method", ["eap", "eap-ig-inputs"])
def test_neuron_scores_are_each_output_dimension_times_its_gradient(model, method):
    """EAP-IG's "neurons": per node and output dimension, Σ (cf − clean)·∂m/∂output, with the
    gradient read at the node's own output hook (retain_grad) — and they sum to the node's edge
    scores. With IG the gradient is the steps' average, so only the sum is checked there."""
    task = random_task(n=3)
    result = attribute(model, task, method, batch_size=2, progress=False, neurons=True)
    neurons = result.neuron_scores
    assert neurons is not None and neurons.shape == (result.graph.n_forward, model.d_model)
    np.testing.assert_allclose(neurons.sum(1), result.scores.sum(1), atol=1e-10)
    if method != "eap":
        return
    batch = _single_batch(task)
    clean, corrupted = node_outputs(model, batch.clean), node_outputs(model, batch.corrupted)
    grads = output_gradients(model, batch)
    scale = np.abs(neurons).max()
    for f, name in enumerate(result.graph.forward_names):
        expected = ((corrupted[name] - clean[name]) * grads[name]).sum((0, 1)).numpy()
        np.testing.assert_allclose(neurons[f], expected, atol=1e-9 * scale)


def test_neuron_scores_need_gradients(model):
    with pytest.raises(CircuitAtlasError, match="neuron scores come from gradients"):
        attribute(model, random_task(), "exact", neurons=True, progress=False)


def test_an_unknown_ig_rule_is_refused(model):
    with pytest.raises(CircuitAtlasError, match="unknown IG rule 'trapezoid'"):
        attribute(model, random_task(), "eap-ig-inputs", ig_rule="trapezoid", progress=False)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_batching_and_padding_change_nothing(method):
    """Right padding is exact: one batch of mixed lengths = one example at a time."""
    model = tiny_model()
    task = random_task(n=4, lengths=(3, 9))
    together = attribute(model, task, method, batch_size=4, progress=False).scores
    alone = attribute(model, task, method, batch_size=1, progress=False).scores
    np.testing.assert_allclose(together, alone, atol=1e-9)


def test_mean_aggregation_divides_the_sum_by_the_examples(model):
    task = random_task(n=4)
    summed = attribute(model, task, "eap", progress=False).scores
    mean = attribute(model, task, "eap", aggregation="mean", progress=False).scores
    np.testing.assert_allclose(mean * 4, summed, atol=1e-12)


@pytest.mark.parametrize("intervention", ["zero", "mean"])
def test_other_interventions_match_brute_force_patching(intervention):
    model = tiny_model()
    task = random_task(n=3, lengths=(5, 6))
    result = attribute(
        model, task, "exact", intervention=intervention, batch_size=3, progress=False
    )
    eap = attribute(model, task, "eap", intervention=intervention, batch_size=3, progress=False)
    batch = _single_batch(task)
    clean = node_outputs(model, batch.clean)
    valid = batch.valid[:, :, None].double()
    graph = result.graph
    from helpers.models import logit_diff

    with torch.no_grad():
        base = logit_diff(model.model(batch.clean), batch).sum()
    for f in (0, 1, graph.n_forward - 1):
        source = graph.forward_names[f]
        if intervention == "zero":
            counterfactual = torch.zeros_like(clean[source])
        else:
            mean = (clean[source] * valid).sum(0) / valid.sum(0)
            counterfactual = mean.expand_as(clean[source])
        k = graph.logits_backward_slot
        value = patch_one_edge(model, batch, counterfactual - clean[source], "logits", "")
        assert result.scores[f, k] == pytest.approx(float(value - base), abs=1e-8)
    assert np.isfinite(eap.scores).all()


def _hook(model, node, channel):
    from helpers.models import input_hook

    return input_hook(model, node, channel)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.parametrize("method", sorted(METHODS))
def test_cuda_gives_the_cpu_scores(method):
    """Attribution runs on CUDA when present, with the same numbers as on the CPU."""
    from circuit_atlas.ingest.attribution.model_adapter import load_model

    cfg = TINY_CONFIG
    task = random_task(n=4, lengths=(3, 9))
    cpu = attribute(load_model(cfg, dtype="float64"), task, method, batch_size=2, progress=False)
    gpu = attribute(
        load_model(cfg, device="cuda", dtype="float64"), task, method, batch_size=2, progress=False
    )
    np.testing.assert_allclose(gpu.scores, cpu.scores, atol=1e-8)
    assert gpu.clean_metric == pytest.approx(cpu.clean_metric, abs=1e-9)
