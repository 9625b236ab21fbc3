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
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from circuit_atlas.ingest.attribution.methods import AttributionResult, attribute
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


def _missing_files() -> list[str]:
    names = ["model.pt", "task.jsonl", "case.json", *(f"scores_{m}.json" for m in METHODS)]
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
    model: LoadedModel, task: Task, case: dict[str, Any], method: str, ig_rule: str | None = None
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
