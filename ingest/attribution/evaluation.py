"""How faithful a circuit is: run the model with every edge *outside* it patched.

faithfulness(C) = (m(C) − m(∅)) / (m(M) − m(∅)), with m(M) the clean metric (nothing patched)
and m(∅) the metric with every edge patched (for ``patching``, exactly the corrupted run). The
curve evaluates top-n circuits at fixed shares of all edges; its areas use the trapezoid rule over
the share in [0.001, 1]: CPR = ∫ f (higher is better), CMD = ∫ |1 − f| (lower is better), as in
the MIB circuit track.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from circuit_atlas.ingest.attribution.circuit import prune_dangling, top_n
from circuit_atlas.ingest.attribution.component_graph import ComponentGraph
from circuit_atlas.ingest.attribution.engine import patched_metric
from circuit_atlas.ingest.attribution.methods import counterfactual_outputs, mean_outputs
from circuit_atlas.ingest.attribution.metrics import get_metric, last_token_logits
from circuit_atlas.ingest.attribution.model_adapter import LoadedModel
from circuit_atlas.ingest.attribution.tasks import Task

CURVE_PERCENTS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)


@dataclass(frozen=True)
class CurvePoint:
    percent: float
    n_edges: int  # after pruning dangling edges
    metric: float
    faithfulness: float


@dataclass(frozen=True)
class Evaluation:
    clean_metric: float  # m(M)
    empty_metric: float  # m(∅)
    points: list[CurvePoint]
    cpr: float
    cmd: float

    def table(self) -> list[dict[str, float]]:
        return [p.__dict__ for p in self.points]


def circuit_metrics(
    model: LoadedModel,
    task: Task,
    circuits: list[np.ndarray],
    *,
    metric: str | None = None,
    intervention: str = "patching",
    batch_size: int = 8,
    progress: bool = True,
) -> tuple[float, float, list[float]]:
    """Mean metric with nothing patched, with everything patched, and with each circuit kept."""
    graph = ComponentGraph.of(model)
    metric_fn = get_metric(metric or task.default_metric)
    everything = torch.from_numpy(graph.edge_mask)
    patches = [everything & ~torch.from_numpy(c) for c in circuits]
    means = mean_outputs(model, graph, task, batch_size) if intervention == "mean" else None
    totals = np.zeros(len(circuits) + 2)
    bar = tqdm(
        total=task.n_batches(batch_size) * (len(circuits) + 2),
        disable=not progress,
        desc="evaluating circuits",
        unit="run",
    )
    for batch in task.batches(batch_size, model.pad_id):
        batch = batch.to(model.device)
        # m(M) is the clean run and m(∅) the run with every edge patched, which
        # counterfactual_outputs has already made: only the circuits need patched runs
        counterfactual, empty_logits = counterfactual_outputs(
            model, graph, batch, intervention, means
        )
        with torch.no_grad():
            clean_logits = model.run(batch.clean)
        reference = torch.log_softmax(last_token_logits(clean_logits, batch), -1)

        def measure(logits: torch.Tensor, batch=batch, reference=reference) -> torch.Tensor:
            return metric_fn(logits, batch, reference)

        totals[0] += float(measure(clean_logits).sum())
        totals[1] += float(measure(empty_logits).sum())
        bar.update(2)
        for i, patch in enumerate(patches, start=2):
            values = patched_metric(model, graph, batch, counterfactual, patch, measure)
            totals[i] += float(values.sum())
            bar.update(1)
    bar.close()
    means_per_run = totals / len(task.examples)
    return float(means_per_run[0]), float(means_per_run[1]), means_per_run[2:].tolist()


def faithfulness(value: float, clean: float, empty: float) -> float:
    span = clean - empty
    return float("nan") if span == 0 else (value - empty) / span


def curve_circuits(
    graph: ComponentGraph, scores: np.ndarray, percents: tuple[float, ...] = CURVE_PERCENTS
) -> list[np.ndarray]:
    """The top-n circuit (dangling edges pruned) at each share of all edges."""
    return [
        prune_dangling(graph, top_n(graph, scores, math.ceil(p / 100 * graph.n_edges)))
        for p in percents
    ]


def curve_from(
    percents: tuple[float, ...],
    circuits: list[np.ndarray],
    clean: float,
    empty: float,
    values: list[float],
) -> Evaluation:
    points = [
        CurvePoint(p, int(c.sum()), v, faithfulness(v, clean, empty))
        for p, c, v in zip(percents, circuits, values)
    ]
    cpr, cmd = curve_areas([p.percent / 100 for p in points], [p.faithfulness for p in points])
    return Evaluation(clean, empty, points, cpr, cmd)


def faithfulness_curve(
    model: LoadedModel,
    task: Task,
    scores: np.ndarray,
    *,
    percents: tuple[float, ...] = CURVE_PERCENTS,
    metric: str | None = None,
    intervention: str = "patching",
    batch_size: int = 8,
    progress: bool = True,
) -> Evaluation:
    circuits = curve_circuits(ComponentGraph.of(model), scores, percents)
    clean, empty, values = circuit_metrics(
        model,
        task,
        circuits,
        metric=metric,
        intervention=intervention,
        batch_size=batch_size,
        progress=progress,
    )
    return curve_from(percents, circuits, clean, empty, values)


def curve_areas(shares: list[float], faithfulness_values: list[float]) -> tuple[float, float]:
    """(CPR, CMD): trapezoid areas of f and |1 − f| over the edge share."""
    x = np.asarray(shares, dtype=float)
    f = np.asarray(faithfulness_values, dtype=float)
    return float(_trapezoid(f, x)), float(_trapezoid(np.abs(1 - f), x))


def plot_curve(evaluation: Evaluation, path: Path, title: str) -> Path:
    """A PNG of faithfulness against the share of edges kept (log axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    x = [p.percent for p in evaluation.points]
    ax.plot(x, [p.faithfulness for p in evaluation.points], marker="o")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("edges kept (% of all edges, top by |score|)")
    ax.set_ylabel("faithfulness")
    ax.set_title(f"{title}\nCPR {evaluation.cpr:.3f} · CMD {evaluation.cmd:.3f}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """The trapezoid rule (``np.trapezoid`` is numpy ≥ 2; graspologic pins numpy < 2)."""
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))
