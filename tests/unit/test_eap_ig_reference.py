"""Edge scores against the reference implementation, hannamw/EAP-IG, on one shared tiny case.

``tests/unit/test_attribution.py`` checks each method against ground truth written in that
file; this checks that our methods are *the same methods* as the ones MIB and the EAP-IG paper
publish numbers for: same graph, same edge names, same IG rules and normalisation. The scores
were computed by EAP-IG's own ``attribute`` in a side environment (``tests/data/eap_ig/
make_fixture.py``, whose docstring says how to regenerate them) on a random float64 model and a
token-id task, so both sides see identical weights and tokens and agree to rounding error
(about 1e-16 of the largest score).

``test_the_other_ig_rule_does_not_match`` shows the comparison is sharp enough to tell the IG
conventions apart: with the other Riemann rule our IG scores miss EAP-IG's by 23-30 %.

Neuron scores (``neuron_scores``, one score per node and output dimension) are checked against
EAP-IG's ``eap.attribute_node.attribute_node(neuron=True)`` for EAP and EAP-IG-inputs. For the
input node and every attention head they agree to rounding error. For MLP nodes they cannot:
EAP-IG's ``make_hooks_and_matrices`` registers an MLP's backward hook at ``node.in_hook``
(``hook_mlp_in``), so it contracts the MLP's *output* difference with the gradient at its
*input*, where we (and EAP-IG's own edge scores) use the gradient at the output. The MLP tests
recompute both products with TransformerLens and show EAP-IG's MLP neuron scores are the first,
ours the second. ``attribute_node`` also steps EAP-IG-inputs over α = 1/m … 1 (the right
Riemann sum) where its edge-level ``attribute`` uses 0 … (m−1)/m, so the neuron comparison asks
for ``ig_rule="right"``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from circuit_atlas.ingest.attribution.methods import AttributionResult, attribute, ig_alphas
from circuit_atlas.ingest.attribution.model_adapter import LoadedModel, load_model
from circuit_atlas.ingest.attribution.tasks import Task, load_task
from circuit_atlas.ingest.safe_torch import load_torch_file

torch.set_num_threads(1)

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "eap_ig"
METHODS = ["eap", "eap-ig-inputs", "clean-corrupted", "eap-ig-activations", "exact"]
# Agreement is asked to 1e-6 of the largest reference score; float64 gives ~1e-16 here.
RELATIVE_TOLERANCE = 1e-6
# Each IG method with the rule EAP-IG does *not* use for it
OTHER_IG_RULE = {"eap-ig-inputs": "right", "eap-ig-activations": "left"}
# Neuron-level methods and the IG rule EAP-IG's attribute_node uses for each (its
# get_scores_eap_ig steps range(1, steps + 1): α = 1/m … 1)
NEURON_METHODS = {"eap": None, "eap-ig-inputs": "right"}


def _missing_files() -> list[str]:
    names = ["model.pt", "task.jsonl", "case.json", *(f"scores_{m}.json" for m in METHODS)]
    names += [f"neurons_{m}.json" for m in NEURON_METHODS]
    return [name for name in names if not (FIXTURE / name).is_file()]


# Without the fixture every test skips, saying which files are missing and how to make them.
pytestmark = pytest.mark.skipif(
    bool(_missing_files()),
    reason=f"EAP-IG reference fixture missing in {FIXTURE} ({', '.join(_missing_files())}); "
    "generate it with tests/data/eap_ig/make_fixture.py (see its docstring)",
)


@pytest.fixture(scope="module")
def case() -> dict[str, Any]:
    """The reference case: dtype, steps, normalisation and the reference's metric values."""
    return json.loads((FIXTURE / "case.json").read_text())


@pytest.fixture(scope="module")
def model(case: dict[str, Any]) -> LoadedModel:
    return load_model(str(FIXTURE / "model.pt"), dtype=case["dtype"])


@pytest.fixture(scope="module")
def task(model: LoadedModel) -> Task:
    return load_task(FIXTURE / "task.jsonl", model)


def reference_scores(method: str) -> dict[str, float]:
    """Edge name → score from EAP-IG's ``Graph.to_json``."""
    edges = json.loads((FIXTURE / f"scores_{method}.json").read_text())["edges"]
    return {name: float(edge["score"]) for name, edge in edges.items()}


def our_scores(result: AttributionResult) -> dict[str, float]:
    forward, backward, scores = result.edge_scores()
    return {
        result.graph.edge_name(int(f), int(k)): float(s)
        for f, k, s in zip(forward, backward, scores)
    }


def relative_error(ours: dict[str, float], reference: dict[str, float]) -> tuple[float, str]:
    """max |ours − reference| / max |reference| over the edges, and the worst edge's name."""
    names = sorted(reference)
    expected = np.array([reference[n] for n in names])
    got = np.array([ours[n] for n in names])
    worst = int(np.argmax(np.abs(got - expected)))
    scale = float(np.abs(expected).max())
    assert scale > 0
    return float(abs(got[worst] - expected[worst])) / scale, names[worst]


def _attribute(
    model: LoadedModel,
    task: Task,
    case: dict[str, Any],
    method: str,
    ig_rule: str | None = None,
    neurons: bool = False,
) -> AttributionResult:
    steps = case["methods"][method]["ig_steps"] or 1
    return attribute(
        model,
        task,
        method,
        metric="logit_diff",
        intervention=case["intervention"],
        ig_steps=steps,
        batch_size=case["batch_size"],
        aggregation=case["circuit_atlas_aggregation"],
        progress=False,
        ig_rule=ig_rule,
        neurons=neurons,
    )


def test_the_task_and_metric_are_the_ones_the_reference_saw(
    case: dict[str, Any], model: LoadedModel, task: Task
) -> None:
    """Same tokens and metric sign: our clean and corrupted logit differences equal the
    fixture's, so a score mismatch below cannot be a tokenisation or metric difference."""
    assert len(task.examples) == case["n_examples"] and not task.dropped
    result = _attribute(model, task, case, "eap")
    assert result.clean_metric == pytest.approx(np.mean(case["clean_metric"]), abs=1e-12)
    assert result.counterfactual_metric == pytest.approx(
        np.mean(case["corrupted_metric"]), abs=1e-12
    )


def test_the_weights_load_bit_for_bit(model: LoadedModel) -> None:
    """float64 weights must reach the model unrounded, or agreement stops at float32's ~1e-7
    (the saved cfg carries ``dtype``; without it the weights pass through float32 parameters)."""
    saved = load_torch_file(FIXTURE / "model.pt")["state_dict"]
    for name, parameter in model.model.named_parameters():
        assert parameter.dtype == torch.float64
        assert torch.equal(parameter, saved[name]), name


def test_the_reference_methods_give_different_scores(case: dict[str, Any]) -> None:
    """Agreement identifies the method only if EAP-IG's methods disagree with each other."""
    scores = {m: reference_scores(m) for m in METHODS}
    for i, a in enumerate(METHODS):
        for b in METHODS[i + 1 :]:
            assert relative_error(scores[a], scores[b])[0] > 1e-3, (a, b)


@pytest.mark.parametrize("method", METHODS)
def test_scores_equal_eap_ig_edge_by_edge(
    case: dict[str, Any], model: LoadedModel, task: Task, method: str
) -> None:
    reference = reference_scores(method)
    ours = our_scores(_attribute(model, task, case, method))
    assert set(ours) == set(reference), "edge names differ from EAP-IG's"
    error, edge = relative_error(ours, reference)
    print(f"{method}: max |ours − EAP-IG| / max |EAP-IG| = {error:.3g} (at {edge})")
    assert error <= RELATIVE_TOLERANCE, (
        f"{method}: edge {edge} is {ours[edge]!r} here, {reference[edge]!r} in EAP-IG"
    )


@pytest.mark.parametrize("method", sorted(OTHER_IG_RULE))
def test_the_other_ig_rule_does_not_match(
    case: dict[str, Any], model: LoadedModel, task: Task, method: str
) -> None:
    """The comparison can tell left from right Riemann sums, so passing above pins the rule."""
    ours = our_scores(_attribute(model, task, case, method, ig_rule=OTHER_IG_RULE[method]))
    error, _ = relative_error(ours, reference_scores(method))
    assert error > 1e3 * RELATIVE_TOLERANCE


def reference_neurons(method: str) -> dict[str, np.ndarray]:
    """Node name → its ``d_model`` neuron scores from EAP-IG's ``attribute_node``."""
    record = json.loads((FIXTURE / f"neurons_{method}.json").read_text())
    return {name: np.array(row, dtype=np.float64) for name, row in record["neurons"].items()}


def our_neurons(
    model: LoadedModel, task: Task, case: dict[str, Any], method: str, ig_rule: str | None
) -> dict[str, np.ndarray]:
    result = _attribute(model, task, case, method, ig_rule=ig_rule, neurons=True)
    assert result.neuron_scores is not None
    return dict(zip(result.graph.forward_names, result.neuron_scores, strict=True))


def neuron_error(
    ours: dict[str, np.ndarray], reference: dict[str, np.ndarray], nodes: list[str]
) -> tuple[float, str]:
    """max |ours − reference| over ``nodes``' neurons / max |reference| over every neuron, and
    the worst node."""
    scale = max(float(np.abs(row).max()) for row in reference.values())
    assert scale > 0
    errors = {n: float(np.abs(ours[n] - reference[n]).max()) / scale for n in nodes}
    worst = max(errors, key=errors.__getitem__)
    return errors[worst], worst


def mlp_neuron_products(
    model: LoadedModel, task: Task, alphas: list[float]
) -> dict[str, dict[str, np.ndarray]]:
    """Per MLP node, Σ_{pos} (corrupted − clean ``hook_mlp_out``)[d] · ∂metric/∂(hook)[d] for
    hook = ``hook_mlp_in`` ("in") and ``hook_mlp_out`` ("out"), averaged over the examples and
    over the IG points α (the embeddings at corrupted + α (clean − corrupted); α = 1 is EAP).

    Independent of the engine under test: TransformerLens caches and ``retain_grad``, one
    unpadded example at a time, the logit difference at its last token."""
    tl = model.model
    layers = range(model.n_layers)
    out_hooks = [f"blocks.{layer}.hook_mlp_out" for layer in layers]
    sides = ("in", "out")
    sums = {
        f"m{layer}": {side: torch.zeros(model.d_model, dtype=torch.float64) for side in sides}
        for layer in layers
    }
    kept: dict[str, torch.Tensor] = {}

    def keep(value: torch.Tensor, hook: Any) -> torch.Tensor:
        value.retain_grad()
        kept[hook.name] = value
        return value

    for example in task.examples:
        assert len(example.answers) == len(example.foils) == 1
        clean, corrupted = torch.tensor([example.clean]), torch.tensor([example.corrupted])
        wanted = ["hook_embed", *out_hooks]
        with torch.no_grad():
            _, clean_cache = tl.run_with_cache(clean, names_filter=wanted)
            _, corrupted_cache = tl.run_with_cache(corrupted, names_filter=wanted)
        for alpha in alphas:
            embed = corrupted_cache["hook_embed"] + alpha * (
                clean_cache["hook_embed"] - corrupted_cache["hook_embed"]
            )
            kept.clear()

            def interpolate(
                value: torch.Tensor, hook: Any, embed: torch.Tensor = embed
            ) -> torch.Tensor:
                return embed.detach().clone().requires_grad_(True)

            hooks: list[tuple[str, Callable[..., torch.Tensor]]] = [("hook_embed", interpolate)]
            hooks += [(f"blocks.{i}.hook_mlp_{side}", keep) for i in layers for side in sides]
            with torch.enable_grad():
                last = tl.run_with_hooks(clean, fwd_hooks=hooks)[0, -1]
                (last[example.answers[0]] - last[example.foils[0]]).backward()
            for layer in layers:
                out = f"blocks.{layer}.hook_mlp_out"
                difference = (corrupted_cache[out] - clean_cache[out])[0]
                for side in sides:
                    grad = kept[f"blocks.{layer}.hook_mlp_{side}"].grad
                    assert grad is not None, f"no gradient at hook_mlp_{side}"
                    sums[f"m{layer}"][side] += (difference * grad[0]).sum(0)
    count = len(task.examples) * len(alphas)
    return {node: {side: (v / count).numpy() for side, v in d.items()} for node, d in sums.items()}


def _alphas(case: dict[str, Any], method: str) -> list[float]:
    rule = NEURON_METHODS[method]
    return [1.0] if rule is None else ig_alphas(case["methods"][method]["ig_steps"], rule)


def test_the_reference_neuron_settings(case: dict[str, Any]) -> None:
    """The neuron fixture used the settings the comparisons below assume."""
    for method in NEURON_METHODS:
        record = json.loads((FIXTURE / f"neurons_{method}.json").read_text())
        assert record["eap_ig_method"] == case["methods"][method]["eap_ig_method"]
        assert record["ig_steps"] == case["methods"][method]["ig_steps"]
        assert record["eap_ig_aggregation"] == "sum"  # its "mean" also divides by d_model
        assert record["circuit_atlas_aggregation"] == case["circuit_atlas_aggregation"]


@pytest.mark.parametrize("method", sorted(NEURON_METHODS))
def test_neuron_scores_equal_eap_ig_for_the_input_and_every_head(
    case: dict[str, Any], model: LoadedModel, task: Task, method: str
) -> None:
    reference = reference_neurons(method)
    ours = our_neurons(model, task, case, method, NEURON_METHODS[method])
    assert set(ours) == set(reference), "node names differ from EAP-IG's"
    nodes = [n for n in reference if not n.startswith("m")]
    assert len(nodes) == 1 + model.n_layers * model.n_heads
    error, node = neuron_error(ours, reference, nodes)
    print(f"{method} neurons (input, heads): max |ours − EAP-IG| / max |EAP-IG| = {error:.3g}")
    assert error <= RELATIVE_TOLERANCE, f"{method}: node {node} differs from EAP-IG"


def test_node_level_ig_needs_the_right_rule(
    case: dict[str, Any], model: LoadedModel, task: Task
) -> None:
    """attribute_node's EAP-IG-inputs is not its edge-level rule: with the left rule (our
    default, EAP-IG's edge scores) the input and head neuron scores miss the reference."""
    reference = reference_neurons("eap-ig-inputs")
    ours = our_neurons(model, task, case, "eap-ig-inputs", "left")
    error, _ = neuron_error(ours, reference, [n for n in reference if not n.startswith("m")])
    assert error > 1e3 * RELATIVE_TOLERANCE


@pytest.mark.parametrize("method", sorted(NEURON_METHODS))
def test_eap_ig_mlp_neuron_scores_take_the_gradient_at_the_mlp_input(
    case: dict[str, Any], model: LoadedModel, task: Task, method: str
) -> None:
    """EAP-IG's MLP neuron scores are (output difference) × (gradient at ``hook_mlp_in``);
    ours are (output difference) × (gradient at ``hook_mlp_out``); the two differ."""
    reference = reference_neurons(method)
    ours = our_neurons(model, task, case, method, NEURON_METHODS[method])
    products = mlp_neuron_products(model, task, _alphas(case, method))
    assert sorted(products) == sorted(n for n in reference if n.startswith("m"))
    at_input = {n: p["in"] for n, p in products.items()}
    at_output = {n: p["out"] for n, p in products.items()}
    nodes = sorted(products)
    reference_error, _ = neuron_error(at_input, reference, nodes)
    ours_error, _ = neuron_error(at_output, ours, nodes)
    difference, _ = neuron_error(ours, reference, nodes)
    print(
        f"{method} MLP neurons: |EAP-IG − diff·grad(mlp_in)| = {reference_error:.3g}, "
        f"|ours − diff·grad(mlp_out)| = {ours_error:.3g}, |ours − EAP-IG| = {difference:.3g} "
        "(each / max |scores|)"
    )
    assert reference_error <= RELATIVE_TOLERANCE
    assert ours_error <= RELATIVE_TOLERANCE
    assert difference > 1e-2
