"""Subnetwork probing: learn which edges a faithful circuit needs, as masks trained by gradient.

Subnetwork probing (Cao, Sanh and Rush, 2021, "Low-Complexity Probing via Finding
Subnetworks") as auto-circuit applies it to edges: each edge has a learnable logit ``θ``; a
hard-concrete sample (Louizos et al., 2018; auto-circuit's constants: stretch to (−0.1, 1.1),
temperature 2/3) turns it into a mask ``m ∈ [0, 1]`` that interpolates the edge between its
clean activation (``m = 1``) and its counterfactual (``m = 0``): the input of node ``k`` is
``x_k + Σ_f (1 − m_fk)(cf_f − a_f)``, with ``a_f`` the output of ``f`` in the same pass, so all
masks at 1 is the clean run and all at 0 the counterfactual one (the construction ``exact`` and
the circuit evaluation use). The loss is

    faithfulness term + λ · size term (+ avoid_lambda · mean over avoided edges of P(kept)),

where the size term is the sampled masks' sum over ``n_edges`` or, with ``circuit_size``,
``ReLU(Σ m − circuit_size) / circuit_size``; the faithfulness term is the KL divergence from the
clean next-token distribution (``target="kl"``) or the task metric's mean distance from its
clean value in units of ``|m(clean) − m(cf)|`` (``target="metric"``). Adam on ``θ`` for
``epochs`` passes over the task; ``dropout`` zeroes each sampled mask with that probability
while training. Masks start at ``init_logit`` (Cao et al.'s value keeps about 90 % of each
edge: training starts from the whole model and removes edges; auto-circuit's "tree
optimisation" direction).

Scores are the learned logits shifted to be non-negative (``θ − min θ``, auto-circuit's
convention), so the usual top-|score| selection keeps the edges the probe kept longest;
``settings["kept_edges"]`` counts the edges whose deterministic mask exceeds ½, and
``settings["history"]`` holds the loss, faithfulness term, expected size and (with a
validation task) validation faithfulness per epoch. A fixed ``seed`` gives the same masks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.ingest.attribution.component_graph import ComponentGraph
from circuit_atlas.ingest.attribution.engine import (
    Hook,
    Slot,
    input_hook_names,
    sublayer_outputs,
    work_dtype,
)
from circuit_atlas.ingest.attribution.metrics import get_metric, last_token_logits
from circuit_atlas.ingest.attribution.model_adapter import LoadedModel
from circuit_atlas.ingest.attribution.tasks import Batch, Task

# Hard-concrete constants of Cao et al.'s code, as auto-circuit copies them.
LEFT, RIGHT, TEMPERATURE = -0.1, 1.1, 2 / 3
KEEP_AT_START = 0.9
INIT_LOGIT = math.log(
    ((KEEP_AT_START - LEFT) / (RIGHT - LEFT)) / (1 - (KEEP_AT_START - LEFT) / (RIGHT - LEFT))
)
L0_SHIFT = TEMPERATURE * math.log(-LEFT / RIGHT)  # P(mask > 0) = sigmoid(θ − L0_SHIFT)
TARGETS = ("kl", "metric")
METHOD_NAME = "subnetwork-probing"


@dataclass(frozen=True)
class ProbeSettings:
    learning_rate: float = 0.1
    epochs: int = 20
    size_lambda: float = 10.0  # auto-circuit's regularize_lambda
    init_logit: float = INIT_LOGIT
    dropout: float = 0.0
    circuit_size: int | None = None
    avoid_edges: tuple[str, ...] = ()  # edge names, e.g. "a0.h1->a1.h0<q>"
    avoid_lambda: float = 1.0
    target: str = "kl"
    seed: int = 0
    validation: Task | None = field(default=None, compare=False)

    def check(self) -> None:
        if self.target not in TARGETS:
            raise CircuitAtlasError(f"unknown probe target {self.target!r}: {', '.join(TARGETS)}")
        if self.epochs < 1 or self.learning_rate <= 0 or self.size_lambda < 0:
            raise CircuitAtlasError("probing needs epochs ≥ 1, a positive learning rate, λ ≥ 0")
        if not 0 <= self.dropout < 1:
            raise CircuitAtlasError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.circuit_size is not None and self.circuit_size < 1:
            raise CircuitAtlasError("circuit_size must be at least 1 edge")


def sample_masks(logits: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A hard-concrete sample per logit: differentiable in the logits, exactly 0 or 1 often."""
    u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype).clamp(1e-4, 1 - 1e-4)
    s = torch.sigmoid((torch.log(u / (1 - u)) + logits) / TEMPERATURE)
    return (s * (RIGHT - LEFT) + LEFT).clamp(0.0, 1.0)


def deterministic_masks(logits: torch.Tensor) -> torch.Tensor:
    """The hard-concrete's test-time mask: the stretched sigmoid, clamped."""
    return (torch.sigmoid(logits) * (RIGHT - LEFT) + LEFT).clamp(0.0, 1.0)


def masked_logits(
    model: LoadedModel,
    graph: ComponentGraph,
    batch: Batch,
    counterfactual: torch.Tensor,
    keep: torch.Tensor,
) -> torch.Tensor:
    """Logits on the clean prompts with every edge ``(f, k)`` carrying ``keep[f, k]`` of its
    clean activation and ``1 − keep[f, k]`` of its counterfactual, differentiably in ``keep``
    (``[n_forward, n_backward]``; entries off the edge mask are ignored)."""
    produced: list[torch.Tensor] = []  # node outputs of this pass, [b, p, n, d], in slot order
    dtype = work_dtype(model)
    patch = ((1 - keep) * torch.from_numpy(graph.edge_mask).to(keep.device, keep.dtype)).to(dtype)

    def record(value: torch.Tensor, hook: object) -> None:
        produced.append(value if value.dim() == 4 else value.unsqueeze(2))

    def mix(slot: Slot) -> Callable[..., torch.Tensor]:
        start = slot.start if isinstance(slot, slice) else slot
        width = int(graph.upstream[start])
        columns = patch[:width, slot]

        def hook(value: torch.Tensor, hook: object) -> torch.Tensor:
            current = torch.cat(produced, dim=2)[:, :, :width].to(dtype)
            delta = counterfactual[:, :, :width] - current
            if columns.dim() == 2:  # one column per head: [f, h]
                change = torch.einsum("bpfd,fh->bphd", delta, columns)
            else:
                change = torch.einsum("bpfd,f->bpd", delta, columns)
            return value + change.to(value.dtype)

        return hook

    hooks: list[Hook] = [(model.input_output_hook(), record)]
    hooks += [(name, record) for name, _ in sublayer_outputs(model, graph)]
    hooks += [(name, mix(slot)) for name, slot in input_hook_names(model, graph)]
    with model.model.hooks(fwd_hooks=hooks):
        return model.model(batch.clean, return_type="logits")


def probe(
    model: LoadedModel,
    task: Task,
    settings: ProbeSettings,
    *,
    counterfactuals: Callable[[Batch], torch.Tensor],
    metric: str,
    batch_size: int,
    progress: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Train the edge masks on ``task``; ``counterfactuals(batch)`` gives each batch's
    counterfactual node outputs. Returns the ``[n_forward, n_backward]`` scores and a summary
    (kept edges, history) for the result's settings."""
    settings.check()
    graph = ComponentGraph.of(model)
    forward, backward = graph.edges()
    avoid = _edge_indices(graph, settings.avoid_edges)
    generator = torch.Generator().manual_seed(settings.seed)
    logits = torch.full(
        (len(forward),), settings.init_logit, dtype=torch.float64, requires_grad=True
    )
    optimiser = torch.optim.Adam([logits], lr=settings.learning_rate)
    metric_fn = get_metric(metric)
    batches = [
        _prepared(model, b, counterfactuals, metric_fn) for b in _batches(task, model, batch_size)
    ]
    validation = (
        [
            _prepared(model, b, counterfactuals, metric_fn)
            for b in _batches(settings.validation, model, batch_size)
        ]
        if settings.validation is not None
        else []
    )
    history: dict[str, list[float]] = {"loss": [], "faithfulness_term": [], "expected_edges": []}
    if validation:
        history["validation_faithfulness_term"] = []
    bar = tqdm(
        total=settings.epochs * len(batches), disable=not progress, desc="probing", unit="step"
    )
    for _ in range(settings.epochs):
        losses, terms = [], []
        for prepared in batches:
            masks = sample_masks(logits, generator)
            if settings.dropout:
                keep_edge = torch.rand(masks.shape, generator=generator) >= settings.dropout
                masks = masks * keep_edge.to(masks.dtype)
            term = _faithfulness_term(
                model, graph, prepared, _dense(masks, graph), settings, metric_fn
            )
            loss = term + settings.size_lambda * _size_term(
                masks, len(forward), settings.circuit_size
            )
            if avoid.size:
                kept = torch.sigmoid(logits[avoid] - L0_SHIFT)
                loss = loss + settings.avoid_lambda * kept.mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            terms.append(float(term.detach()))
            bar.update(1)
        history["loss"].append(float(np.mean(losses)))
        history["faithfulness_term"].append(float(np.mean(terms)))
        with torch.no_grad():
            history["expected_edges"].append(float(torch.sigmoid(logits - L0_SHIFT).sum()))
            if validation:
                fixed = _dense(deterministic_masks(logits), graph)
                history["validation_faithfulness_term"].append(
                    float(
                        np.mean(
                            [
                                float(
                                    _faithfulness_term(model, graph, p, fixed, settings, metric_fn)
                                )
                                for p in validation
                            ]
                        )
                    )
                )
    bar.close()
    learned = logits.detach()
    scores = np.zeros((graph.n_forward, graph.n_backward))
    scores[forward, backward] = (learned - learned.min()).numpy()
    with torch.no_grad():  # E[Σ sampled masks], what the size penalty sees, by Monte Carlo
        draws = torch.Generator().manual_seed(settings.seed + 1)
        mask_sum = float(
            torch.stack([sample_masks(learned, draws) for _ in range(256)]).mean(0).sum()
        )
    n_examples = sum(p.batch.size for p in batches)
    summary = {
        "clean_metric": sum(float(p.clean_metric.sum()) for p in batches) / n_examples,
        "counterfactual_metric": sum(float(p.counterfactual_metric.sum()) for p in batches)
        / n_examples,
        "kept_edges": int((deterministic_masks(learned) > 0.5).sum()),
        "expected_mask_sum": mask_sum,
        "history": history,
        "probe": {
            "learning_rate": settings.learning_rate,
            "epochs": settings.epochs,
            "size_lambda": settings.size_lambda,
            "init_logit": settings.init_logit,
            "dropout": settings.dropout,
            "circuit_size": settings.circuit_size,
            "avoid_edges": list(settings.avoid_edges),
            "avoid_lambda": settings.avoid_lambda,
            "target": settings.target,
            "seed": settings.seed,
        },
    }
    return scores * graph.edge_mask, summary


@dataclass
class _Prepared:
    batch: Batch
    counterfactual: torch.Tensor
    clean_logprobs: torch.Tensor
    clean_metric: torch.Tensor
    counterfactual_metric: torch.Tensor
    scale: float  # mean |m(clean) − m(cf)| of the batch, the unit of the metric target


def _prepared(
    model: LoadedModel,
    batch: Batch,
    counterfactuals: Callable[[Batch], torch.Tensor],
    metric_fn: Any,
) -> _Prepared:
    from circuit_atlas.ingest.attribution.engine import patched_logits

    graph = ComponentGraph.of(model)
    cf = counterfactuals(batch)
    with torch.no_grad():
        clean_logits = model.run(batch.clean)
        reference = torch.log_softmax(last_token_logits(clean_logits, batch), -1)
        clean_metric = metric_fn(clean_logits, batch, reference)
        cf_logits = patched_logits(model, graph, batch, cf, torch.from_numpy(graph.edge_mask))
        cf_metric = metric_fn(cf_logits, batch, reference)
    scale = float((clean_metric - cf_metric).abs().mean()) or 1.0
    return _Prepared(batch, cf, reference, clean_metric, cf_metric, scale)


def _faithfulness_term(
    model: LoadedModel,
    graph: ComponentGraph,
    prepared: _Prepared,
    keep: torch.Tensor,
    settings: ProbeSettings,
    metric_fn: Any,
) -> torch.Tensor:
    logits = masked_logits(model, graph, prepared.batch, prepared.counterfactual, keep)
    if settings.target == "kl":
        kl = get_metric("kl")
        return kl(logits, prepared.batch, prepared.clean_logprobs).mean()
    values = metric_fn(logits, prepared.batch, prepared.clean_logprobs)
    return (values - prepared.clean_metric).abs().mean() / prepared.scale


def _size_term(masks: torch.Tensor, n_edges: int, circuit_size: int | None) -> torch.Tensor:
    if circuit_size is None:
        return masks.sum() / n_edges
    return torch.relu(masks.sum() - circuit_size) / circuit_size


def _dense(masks: torch.Tensor, graph: ComponentGraph) -> torch.Tensor:
    forward, backward = graph.edges()
    out = torch.zeros(graph.n_forward, graph.n_backward, dtype=masks.dtype)
    return out.index_put((torch.from_numpy(forward), torch.from_numpy(backward)), masks)


def _edge_indices(graph: ComponentGraph, names: tuple[str, ...]) -> np.ndarray:
    forward, backward = graph.edges()
    index = {graph.edge_name(f, k): i for i, (f, k) in enumerate(zip(forward, backward))}
    unknown = [n for n in names if n not in index]
    if unknown:
        raise CircuitAtlasError(f"avoid_edges: not edges of this model: {unknown[:5]}")
    return np.array([index[n] for n in names], dtype=np.int64)


def _batches(task: Task, model: LoadedModel, batch_size: int) -> list[Batch]:
    return [b.to(model.device) for b in task.batches(batch_size, model.pad_id)]
