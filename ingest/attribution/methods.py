"""The attribution methods, one registry entry each, and the job that runs one over a task.

Every method estimates, for every edge ``(f, k)``, the change in the metric when that edge alone
carries the counterfactual: ``m(patch f→k) − m(clean)``, summed over examples.

- ``eap``: ``(cf_f − clean_f) · ∂m/∂x_k`` at the clean input (one forward/backward).
- ``clean-corrupted``: the same difference times the mean of the gradients at the clean and the
  counterfactual inputs.
- ``eap-ig-inputs``: the gradient averaged over the embeddings interpolated from counterfactual
  to clean, ``α = 1/n, 2/n, …, 1`` (``n = --ig-steps``; with ``n = 1`` it is ``eap``). The edges
  out of ``input`` then sum to IG's completeness, ``m(cf) − m(clean)``, as ``n`` grows.
- ``eap-ig-activations`` (as hannamw/EAP-IG defines it): one sublayer at a time — the input,
  each attention layer, each MLP — is replaced by a constant interpolated between counterfactual
  and clean while the rest of the model runs on the clean prompt; the gradient at every node
  input is averaged over all sublayers × steps. Its reference uses the right rule.
- ``eap-ig-partial-activations``: every node's output ``o`` (the input node included) moves to
  ``o + α (cf − o)`` at once, gradients kept; the score averages ``(cf_f − o_f) · ∂m/∂x_k``
  over the steps, with ``o_f`` the node's own output in that pass. This is the gradient of the
  metric with respect to edge masks all set to α, i.e. auto-circuit's mask-gradient prune
  scores (integrated over α; auto-circuit sums instead of averaging and uses the loss
  ``−metric``).
- ``exact``: activation patching of each edge in turn (one forward per edge; the oracle).
- ``subnetwork-probing`` (``subnetwork_probing.py``): edge masks trained for faithfulness and
  size; its scores are the learned mask logits, not an estimate of the patching effect.

Counterfactuals (``--intervention``): ``patching`` (the corrupted prompt's activations), ``zero``,
or ``mean`` (each node's mean clean output at each position over the task).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.ingest.attribution.component_graph import ComponentGraph
from circuit_atlas.ingest.attribution.engine import (
    GradientPass,
    new_activations,
    patched_logits,
    patched_metric,
    record_outputs,
    sublayer_outputs,
    work_dtype,
)
from circuit_atlas.ingest.attribution.metrics import get_metric, last_token_logits
from circuit_atlas.ingest.attribution.model_adapter import LoadedModel
from circuit_atlas.ingest.attribution.subnetwork_probing import METHOD_NAME, ProbeSettings, probe
from circuit_atlas.ingest.attribution.tasks import Batch, Task
from circuit_atlas.registrar import registrar

INTERVENTIONS = ("patching", "zero", "mean")
AGGREGATIONS = ("sum", "mean")


@dataclass
class AttributionResult:
    graph: ComponentGraph
    scores: np.ndarray  # [n_forward, n_backward], 0 where there is no edge
    method: str
    metric: str
    intervention: str
    aggregation: str
    n_examples: int
    clean_metric: float  # mean over examples
    counterfactual_metric: float
    settings: dict[str, Any] = field(default_factory=dict)
    # [n_forward, d_model]: each node's score per output dimension (EAP-IG's "neurons"), summed
    # like the edge scores; None unless asked for
    neuron_scores: np.ndarray | None = None

    def edge_scores(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Forward slot, backward slot and score of every edge."""
        forward, backward = self.graph.edges()
        return forward, backward, self.scores[forward, backward]


@dataclass
class BatchContext:
    """What a method gets for one batch: the model, the batch and its counterfactual."""

    model: LoadedModel
    graph: ComponentGraph
    batch: Batch
    counterfactual: torch.Tensor  # [batch, pos, n_forward, d] node outputs
    metric: Callable[[torch.Tensor], torch.Tensor]
    ig_steps: int
    progress: Any
    ig_rule: str = "left"
    neurons: torch.Tensor | None = None  # [n_forward, d_model] when neuron scores are asked

    def contract(self, grads: GradientPass, difference: torch.Tensor, scores: torch.Tensor) -> None:
        grads.contract(difference, scores, self.neurons)

    def alphas(self) -> list[float]:
        return ig_alphas(self.ig_steps, self.ig_rule)


# Where integrated gradients evaluates the path from counterfactual (α = 0) to clean (α = 1):
# hannamw/EAP-IG (and so MIB's published numbers) uses the left Riemann sum, α = k/m for
# k = 0 … m−1; "right" is k = 1 … m (one step is then plain EAP); "midpoint" (k + ½)/m, whose
# error shrinks as 1/m² (tests/unit/test_attribution.py shows it converging fastest).
IG_RULES = ("left", "right", "midpoint")
DEFAULT_IG_RULE = "left"
# Each method's default is its reference's: hannamw/EAP-IG's get_scores_ig_activations steps
# α = 1/m … 1 (right), its get_scores_eap_ig α = 0 … (m−1)/m (left).
METHOD_IG_RULES = {"eap-ig-activations": "right"}
IG_METHODS = ("eap-ig-inputs", "eap-ig-activations", "eap-ig-partial-activations")


def default_ig_rule(method: str) -> str:
    return METHOD_IG_RULES.get(method, DEFAULT_IG_RULE)


def ig_alphas(steps: int, rule: str) -> list[float]:
    offset = {"left": 0.0, "right": 1.0, "midpoint": 0.5}.get(rule)
    if offset is None:
        raise CircuitAtlasError(f"unknown IG rule {rule!r}: choose one of {', '.join(IG_RULES)}")
    return [(k + offset) / steps for k in range(steps)]


Method = Callable[[BatchContext, torch.Tensor], None]
METHODS: dict[str, Method] = {}  # the per-batch estimators
PROBING = METHOD_NAME  # subnetwork probing trains over the whole task: not a per-batch method


register = registrar(METHODS)


@register("eap")
def eap(ctx: BatchContext, scores: torch.Tensor) -> None:
    grads = GradientPass(ctx.model, ctx.graph, ctx.batch)
    clean = new_activations(ctx.graph, ctx.batch, ctx.model)
    grads.run(ctx.metric, ctx.batch.clean, record_into=clean)
    ctx.contract(grads, ctx.counterfactual - clean, scores)


@register("clean-corrupted")
def clean_corrupted(ctx: BatchContext, scores: torch.Tensor) -> None:
    grads = GradientPass(ctx.model, ctx.graph, ctx.batch)
    clean = new_activations(ctx.graph, ctx.batch, ctx.model)
    grads.run(ctx.metric, ctx.batch.clean, record_into=clean, weight=0.5)
    grads.run(
        ctx.metric,
        ctx.batch.clean,
        input_value=ctx.counterfactual[:, :, 0],
        output_values=ctx.counterfactual,
        weight=0.5,
    )
    ctx.contract(grads, ctx.counterfactual - clean, scores)


@register("eap-ig-inputs")
def eap_ig_inputs(ctx: BatchContext, scores: torch.Tensor) -> None:
    grads = GradientPass(ctx.model, ctx.graph, ctx.batch)
    clean = new_activations(ctx.graph, ctx.batch, ctx.model)
    start = ctx.counterfactual[:, :, 0]
    target = ctx.model.embeddings(ctx.batch.clean)
    alphas = ctx.alphas()
    for alpha in alphas:
        grads.run(
            ctx.metric,
            ctx.batch.clean,
            input_value=start + alpha * (target - start),
            record_into=clean if alpha == 1.0 else None,  # α = 1 is the clean input
            weight=1.0 / len(alphas),
        )
        ctx.progress.update(1)
    if 1.0 not in alphas:
        clean, _ = record_outputs(ctx.model, ctx.graph, ctx.batch.clean, ctx.batch)
    ctx.contract(grads, ctx.counterfactual - clean, scores)


@register("eap-ig-activations")
def eap_ig_activations(ctx: BatchContext, scores: torch.Tensor) -> None:
    clean, _ = record_outputs(ctx.model, ctx.graph, ctx.batch.clean, ctx.batch)
    grads = GradientPass(ctx.model, ctx.graph, ctx.batch)
    cf = ctx.counterfactual
    alphas = ctx.alphas()
    sublayers: list[tuple[str | None, Any]] = [(None, 0), *sublayer_outputs(ctx.model, ctx.graph)]
    weight = 1.0 / (len(sublayers) * len(alphas))
    for name, slot in sublayers:
        for alpha in alphas:
            value = cf[:, :, slot] + alpha * (clean[:, :, slot] - cf[:, :, slot])
            if name is None:  # the input node: the embeddings themselves
                grads.run(ctx.metric, ctx.batch.clean, input_value=value, weight=weight)
            else:
                grads.run(ctx.metric, ctx.batch.clean, replace=(name, value), weight=weight)
            ctx.progress.update(1)
    ctx.contract(grads, cf - clean, scores)


@register("eap-ig-partial-activations")
def eap_ig_partial_activations(ctx: BatchContext, scores: torch.Tensor) -> None:
    cf = ctx.counterfactual
    clean_input = ctx.model.embeddings(ctx.batch.clean)
    alphas = ctx.alphas()
    for alpha in alphas:
        grads = GradientPass(ctx.model, ctx.graph, ctx.batch)
        own = new_activations(ctx.graph, ctx.batch, ctx.model)
        grads.run(
            ctx.metric,
            ctx.batch.clean,
            input_value=clean_input + alpha * (cf[:, :, 0] - clean_input),
            mix=(cf, alpha),
            record_into=own,
            weight=1.0 / len(alphas),
        )
        own[:, :, 0] = clean_input  # the input node's own output is always the embeddings
        ctx.contract(grads, cf - own, scores)
        ctx.progress.update(1)


@register("exact")
def exact(ctx: BatchContext, scores: torch.Tensor) -> None:
    none = torch.zeros(ctx.graph.n_forward, ctx.graph.n_backward, dtype=torch.bool)
    clean = patched_metric(
        ctx.model, ctx.graph, ctx.batch, ctx.counterfactual, none, ctx.metric
    ).sum()
    forward, backward = ctx.graph.edges()
    for f, k in zip(forward, backward):
        patch = none.clone()
        patch[f, k] = True
        value = patched_metric(
            ctx.model, ctx.graph, ctx.batch, ctx.counterfactual, patch, ctx.metric
        ).sum()
        scores[f, k] += (value - clean).to(scores.dtype)


def _probed(
    model: LoadedModel,
    task: Task,
    settings: ProbeSettings,
    metric: str,
    intervention: str,
    means: torch.Tensor | None,
    batch_size: int,
    aggregation: str,
    progress: bool,
) -> AttributionResult:
    graph = ComponentGraph.of(model)

    def counterfactuals(batch: Batch) -> torch.Tensor:
        return counterfactual_outputs(model, graph, batch, intervention, means)[0]

    scores, summary = probe(
        model,
        task,
        settings,
        counterfactuals=counterfactuals,
        metric=metric,
        batch_size=batch_size,
        progress=progress,
    )
    return AttributionResult(
        graph=graph,
        scores=scores,
        method=PROBING,
        metric=metric,
        intervention=intervention,
        aggregation=aggregation,  # the scores are mask logits: no sum over examples to divide
        n_examples=len(task.examples),
        clean_metric=summary.pop("clean_metric"),
        counterfactual_metric=summary.pop("counterfactual_metric"),
        settings={"batch_size": batch_size, "task": task.name, **summary},
    )


def steps_per_batch(method: str, ig_steps: int, graph: ComponentGraph) -> int:
    """Forward/backward passes per batch (the progress bar's unit)."""
    if method == "eap-ig-activations":
        return ig_steps * (1 + graph.n_layers * (2 if graph.has_mlps else 1))
    return ig_steps if method in IG_METHODS else 1


def counterfactual_outputs(
    model: LoadedModel,
    graph: ComponentGraph,
    batch: Batch,
    intervention: str,
    means: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Counterfactual node outputs ``[batch, pos, n_forward, d]`` and the logits with every edge
    carrying them: for ``patching`` both come from the one corrupted forward pass."""
    if intervention == "patching":
        return record_outputs(model, graph, batch.corrupted, batch)
    if intervention == "zero":
        outputs = new_activations(graph, batch, model)
    else:
        assert means is not None
        width = batch.clean.shape[1]
        outputs = means[:width].unsqueeze(0).expand(batch.size, -1, -1, -1).contiguous()
    everything = torch.from_numpy(graph.edge_mask)
    return outputs, patched_logits(model, graph, batch, outputs, everything)


def mean_outputs(
    model: LoadedModel, graph: ComponentGraph, task: Task, batch_size: int
) -> torch.Tensor:
    """``[pos, n_forward, d]``: each node's mean clean output at each position (pads excluded)."""
    width = max(len(e.clean) for e in task.examples)
    total = torch.zeros(
        width, graph.n_forward, model.d_model, device=model.device, dtype=work_dtype(model)
    )
    count = torch.zeros(width, 1, 1, device=model.device, dtype=total.dtype)
    for batch in task.batches(batch_size, model.pad_id):
        batch = batch.to(model.device)
        outputs, _ = record_outputs(model, graph, batch.clean, batch)
        valid = batch.valid.to(device=model.device, dtype=total.dtype)
        positions = outputs.shape[1]
        total[:positions] += torch.einsum("bpfd,bp->pfd", outputs, valid)
        count[:positions, 0, 0] += valid.sum(0)
    return total / count.clamp(min=1)


def attribute(
    model: LoadedModel,
    task: Task,
    method: str = "eap-ig-inputs",
    *,
    metric: str | None = None,
    intervention: str = "patching",
    ig_steps: int = 5,
    batch_size: int = 8,
    aggregation: str = "sum",
    progress: bool = True,
    ig_rule: str | None = None,
    neurons: bool = False,
    probe: ProbeSettings | None = None,
) -> AttributionResult:
    """Score every edge of ``model``'s component graph on ``task`` with ``method``; with
    ``neurons``, also every node's output dimensions (gradient methods only). ``probe`` holds
    the settings of ``subnetwork-probing`` (trained over the whole task, not batch by batch)."""
    if method not in ALL_METHODS:
        raise CircuitAtlasError(
            f"unknown method {method!r}: choose one of {', '.join(ALL_METHODS)}"
        )
    if intervention not in INTERVENTIONS:
        raise CircuitAtlasError(
            f"unknown intervention {intervention!r}: choose one of {', '.join(INTERVENTIONS)}"
        )
    if aggregation not in AGGREGATIONS:
        raise CircuitAtlasError(f"aggregation must be one of {', '.join(AGGREGATIONS)}")
    if ig_steps < 1:
        raise CircuitAtlasError("--ig-steps must be at least 1")
    if neurons and method in ("exact", PROBING):
        raise CircuitAtlasError(
            "neuron scores come from gradients; 'exact' patches whole edges (choose eap or an "
            "integrated-gradients method)"
        )
    ig_rule = ig_rule or default_ig_rule(method)
    ig_alphas(ig_steps, ig_rule)  # an unknown rule fails before any work
    metric_name = metric or task.default_metric
    metric_fn = get_metric(metric_name)
    graph = ComponentGraph.of(model)
    scores = torch.zeros(
        graph.n_forward, graph.n_backward, dtype=torch.float64, device=model.device
    )
    neuron_scores = (
        torch.zeros(graph.n_forward, model.d_model, dtype=torch.float64, device=model.device)
        if neurons
        else None
    )
    means = mean_outputs(model, graph, task, batch_size) if intervention == "mean" else None
    if method == PROBING:
        return _probed(
            model, task, probe or ProbeSettings(), metric_name, intervention, means, batch_size,
            aggregation, progress,
        )  # fmt: skip
    clean_total = cf_total = 0.0
    per_batch = steps_per_batch(method, ig_steps, graph)
    bar = tqdm(
        total=task.n_batches(batch_size) * per_batch,
        disable=not progress,
        desc=f"{method} ({len(task.examples)} examples)",
        unit="step",
    )
    for batch in task.batches(batch_size, model.pad_id):
        batch = batch.to(model.device)
        counterfactual, cf_logits = counterfactual_outputs(model, graph, batch, intervention, means)
        with torch.no_grad():
            clean_logits = model.run(batch.clean)
            clean_logprobs = torch.log_softmax(last_token_logits(clean_logits, batch), -1)

        def measure(
            logits: torch.Tensor, batch: Batch = batch, reference: torch.Tensor = clean_logprobs
        ) -> torch.Tensor:
            return metric_fn(logits, batch, reference)

        clean_total += float(measure(clean_logits).sum())
        cf_total += float(measure(cf_logits).sum())
        context = BatchContext(
            model, graph, batch, counterfactual, measure, ig_steps, bar, ig_rule, neuron_scores
        )
        METHODS[method](context, scores)
        if per_batch == 1:
            bar.update(1)
    bar.close()
    n = len(task.examples)
    result = scores.cpu().numpy()
    per_dimension = None if neuron_scores is None else neuron_scores.cpu().numpy()
    if aggregation == "mean":
        result = result / n
        per_dimension = None if per_dimension is None else per_dimension / n
    return AttributionResult(
        graph=graph,
        scores=result * graph.edge_mask,
        method=method,
        metric=metric_name,
        intervention=intervention,
        aggregation=aggregation,
        n_examples=n,
        clean_metric=clean_total / n,
        counterfactual_metric=cf_total / n,
        settings={
            "ig_steps": ig_steps,
            "ig_rule": ig_rule,
            "batch_size": batch_size,
            "task": task.name,
            "dropped_pairs": len(task.dropped),
        },
        neuron_scores=per_dimension,
    )


ALL_METHODS = (*METHODS, PROBING)
