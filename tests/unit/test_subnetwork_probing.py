"""Subnetwork probing: learned edge masks on the shipped induction model and a tiny one.

Checked: the masked forward is the patching construction (all masks 1 = clean, 0 = every edge
patched, fractions = patching with fractional weights); on the induction model the probe's
scores single out exactly the induction and previous-token heads (found independently from
attention patterns) and its kept edges are a faithful circuit; λ = 0 keeps every edge;
``circuit_size`` bounds the expected mask sum; a fixed seed gives the same masks; avoided edges
are dropped; bad settings get one clear error.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.ingest.attribution.component_graph import ComponentGraph
from circuit_atlas.ingest.attribution.engine import patched_logits, record_outputs
from circuit_atlas.ingest.attribution.evaluation import circuit_metrics, faithfulness
from circuit_atlas.ingest.attribution.methods import attribute
from circuit_atlas.ingest.attribution.model_adapter import load_model
from circuit_atlas.ingest.attribution.subnetwork_probing import ProbeSettings, masked_logits
from circuit_atlas.ingest.attribution.tasks import Batch
from circuit_atlas.ingest.attribution.toy_induction import (
    head_roles,
    induction_task,
    weights_path,
)

from helpers.models import random_task, tiny_model

torch.set_num_threads(1)
TRAINED = ProbeSettings(epochs=60)  # 3 batches of 8: 180 Adam steps


@pytest.fixture(scope="module")
def induction_model():
    return load_model(weights_path())


def probe(model, task, settings: ProbeSettings = TRAINED, batch_size: int = 8):
    return attribute(
        model, task, "subnetwork-probing", batch_size=batch_size, progress=False, probe=settings
    )


def test_the_masked_forward_is_patching_with_weights_one_minus_the_mask():
    model = tiny_model()
    task = random_task(n=3)
    batch = Batch.of(task.examples, pad_id=0)
    graph = ComponentGraph.of(model)
    counterfactual, _ = record_outputs(model, graph, batch.corrupted, batch)
    edges = torch.from_numpy(graph.edge_mask).double()
    keep = torch.rand(edges.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        for masks in (edges, 0 * edges, keep * edges):
            ours = masked_logits(model, graph, batch, counterfactual, masks)
            reference = patched_logits(model, graph, batch, counterfactual, (1 - masks) * edges)
            assert torch.allclose(ours, reference, atol=1e-10)
        assert torch.allclose(
            masked_logits(model, graph, batch, counterfactual, edges), model.run(batch.clean)
        )


def test_it_finds_the_induction_and_previous_token_heads(induction_model):
    from unit.test_induction import head_importance, mechanism_heads

    expected = mechanism_heads(head_roles(induction_model))
    task = induction_task()
    result = probe(induction_model, task)
    ranking = sorted(
        head_importance(result.graph, result.scores).items(), key=lambda item: -item[1]
    )
    assert {name for name, _ in ranking[: len(expected)]} == expected, ranking
    kept = result.settings["kept_edges"]
    assert 3 <= kept <= 20  # of 81: a small circuit
    circuit = np.zeros_like(result.scores, dtype=bool)
    forward, backward = result.graph.edges()
    order = np.argsort(-result.scores[forward, backward], kind="stable")[:kept]
    circuit[forward[order], backward[order]] = True
    clean, empty, (value,) = circuit_metrics(induction_model, task, [circuit], progress=False)
    assert faithfulness(value, clean, empty) > 0.8


def test_without_a_size_penalty_every_edge_is_kept(induction_model):
    """λ = 0 leaves only the faithfulness term, which the whole model already satisfies. (Edges
    the output ignores get near-zero, noisy gradients that Adam turns into steps of about the
    learning rate, so a long run can still random-walk one of them out: 20 steps here.)"""
    result = probe(
        induction_model, induction_task(), ProbeSettings(epochs=20, size_lambda=0), batch_size=24
    )
    assert result.settings["kept_edges"] == result.graph.n_edges


@pytest.mark.parametrize("size", [10, 20])
def test_circuit_size_bounds_the_expected_number_of_edges(induction_model, size):
    """The penalty ReLU(Σ m − size) acts on sampled masks, so their expected sum ends at most
    ``size`` and (measured: 0.75–0.9 × size) at least half of it."""
    result = probe(induction_model, induction_task(), ProbeSettings(epochs=60, circuit_size=size))
    assert size / 2 <= result.settings["expected_mask_sum"] <= size


def test_a_seed_fixes_the_masks_and_avoided_edges_are_dropped(induction_model):
    task = induction_task(n=8)
    short = ProbeSettings(epochs=3)
    first, again = probe(induction_model, task, short), probe(induction_model, task, short)
    np.testing.assert_array_equal(first.scores, again.scores)
    other = probe(induction_model, task, ProbeSettings(epochs=3, seed=1))
    assert not np.array_equal(first.scores, other.scores)
    graph = first.graph
    full = probe(induction_model, task, ProbeSettings(epochs=60))
    forward, backward = graph.edges()
    best = int(np.argmax(full.scores[forward, backward]))
    name = graph.edge_name(forward[best], backward[best])
    avoided = probe(
        induction_model, task, ProbeSettings(epochs=60, avoid_edges=(name,), avoid_lambda=50)
    )
    rank = (avoided.scores[forward, backward] > avoided.scores[forward[best], backward[best]]).sum()
    assert rank >= avoided.settings["kept_edges"]  # no longer among the kept edges


def test_validation_history_and_bad_settings(induction_model):
    task = induction_task(n=8)
    result = probe(induction_model, task, ProbeSettings(epochs=2, validation=induction_task(8, 9)))
    history = result.settings["history"]
    assert len(history["loss"]) == len(history["validation_faithfulness_term"]) == 2
    for settings, message in [
        (ProbeSettings(target="mse"), "unknown probe target"),
        (ProbeSettings(dropout=1.0), "dropout must be in"),
        (ProbeSettings(circuit_size=0), "circuit_size must be at least 1"),
        (ProbeSettings(avoid_edges=("x->y",)), "not edges of this model"),
    ]:
        with pytest.raises(CircuitAtlasError, match=message):
            probe(induction_model, task, settings)
    with pytest.raises(CircuitAtlasError, match="neuron scores come from gradients"):
        attribute(induction_model, task, "subnetwork-probing", neurons=True, progress=False)
