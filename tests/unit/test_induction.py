"""The shipped toy model with a known mechanism: attribution must find its induction circuit.

The induction and previous-token heads are identified independently, from attention patterns
(``head_roles``); attribution must rank exactly those heads first.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from circuit_atlas.ingest.attribution.component_graph import ComponentGraph
from circuit_atlas.ingest.attribution.methods import attribute
from circuit_atlas.ingest.attribution.model_adapter import load_model
from circuit_atlas.ingest.attribution.toy_induction import (
    head_roles,
    induction_task,
    weights_path,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def induction_model():
    return load_model(weights_path())


def head_importance(graph: ComponentGraph, scores: np.ndarray) -> dict[str, float]:
    """Σ |score| of every edge into or out of each head."""
    magnitude = np.abs(scores)
    importance = {}
    for layer in range(graph.n_layers):
        for head in range(graph.n_heads):
            name = f"a{layer}.h{head}"
            out = magnitude[graph.forward_names.index(name)].sum()
            into = sum(
                magnitude[:, graph.head_backward_slots(layer, c)][:, head].sum() for c in "qkv"
            )
            importance[name] = float(out + into)
    return importance


def test_the_shipped_model_has_induction_and_previous_token_heads(induction_model):
    roles = head_roles(induction_model)
    previous = sorted(roles["previous_token"].tolist())
    assert previous[-1] > 0.4 and previous[-1] > 2 * previous[-2]  # uniform would be ~0.1
    assert roles["induction"].min() > 0.8  # every layer-1 head does induction


def mechanism_heads(roles: dict[str, torch.Tensor]) -> set[str]:
    """Layer-1 heads that do induction (the shipped model has redundant ones) and the layer-0
    previous-token head, by attention patterns alone."""
    induction = {f"a1.h{h}" for h, score in enumerate(roles["induction"].tolist()) if score > 0.5}
    return induction | {f"a0.h{int(roles['previous_token'].argmax())}"}


@pytest.mark.parametrize("method", ["eap-ig-inputs", "exact"])
def test_attribution_ranks_the_induction_and_previous_token_heads_first(induction_model, method):
    expected = mechanism_heads(head_roles(induction_model))
    task = induction_task()
    result = attribute(induction_model, task, method, batch_size=24, progress=False)
    assert result.clean_metric > 2 and result.clean_metric > result.counterfactual_metric
    ranking = sorted(
        head_importance(result.graph, result.scores).items(), key=lambda item: -item[1]
    )
    top = {name for name, _ in ranking[: len(expected)]}
    assert top == expected, ranking
