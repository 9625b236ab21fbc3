"""One attribution job end to end: score, select a circuit, evaluate it, export it.

Shared by ``circuit-atlas attribute`` and the demo. It never opens the store: the caller writes
:attr:`JobOutput.graph`, after every torch computation is done (the store may start the
embedded JVM, which must not share the process with busy native thread pools).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest.attribution.circuit import select
from circuit_atlas.ingest.attribution.evaluation import (
    CURVE_PERCENTS,
    Evaluation,
    circuit_metrics,
    curve_circuits,
    curve_from,
    faithfulness,
    plot_curve,
)
from circuit_atlas.ingest.attribution.export import (
    eap_ig_document,
    to_circuit_graph,
    write_eap_ig_json,
)
from circuit_atlas.ingest.attribution.methods import AttributionResult, attribute
from circuit_atlas.ingest.attribution.model_adapter import LoadedModel
from circuit_atlas.ingest.attribution.subnetwork_probing import ProbeSettings
from circuit_atlas.ingest.attribution.tasks import Task


@dataclass
class JobSettings:
    method: str = "eap-ig-inputs"
    metric: str | None = None
    intervention: str = "patching"
    ig_steps: int = 5
    ig_rule: str | None = None  # None: the method's reference rule (methods.default_ig_rule)
    neurons: bool = False  # also score every node's output dimensions (node properties)
    probe: ProbeSettings | None = None  # subnetwork-probing's settings
    batch_size: int = 8
    aggregation: str = "sum"
    selection: str = "topn"
    amount: float | None = None  # edges (topn/greedy) or |score| (threshold); None: 1% of edges
    curve: bool = True
    progress: bool = True


@dataclass
class JobOutput:
    result: AttributionResult
    circuit: np.ndarray
    faithfulness: float
    circuit_metric: float
    evaluation: Evaluation | None
    graph: CircuitGraph
    files: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        r = self.result
        rows: dict[str, object] = {
            "method": r.method,
            "metric": r.metric,
            "intervention": r.intervention,
            "examples": r.n_examples,
            "dropped pairs": r.settings.get("dropped_pairs", 0),
            "edges": r.graph.n_edges,
            "clean metric m(M)": round(r.clean_metric, 4),
            "corrupted metric m(∅)": round(r.counterfactual_metric, 4),
            "circuit edges": int(self.circuit.sum()),
            "circuit metric m(C)": round(self.circuit_metric, 4),
            "faithfulness": round(self.faithfulness, 4),
        }
        if self.evaluation is not None:
            rows["CPR"] = round(self.evaluation.cpr, 4)
            rows["CMD"] = round(self.evaluation.cmd, 4)
        return rows


def default_amount(settings: JobSettings, n_edges: int) -> float:
    if settings.amount is not None:
        return settings.amount
    if settings.selection == "threshold":
        return 0.0
    return max(1, math.ceil(0.01 * n_edges))


def run_job(
    model: LoadedModel,
    task: Task,
    settings: JobSettings,
    *,
    graph_id: str,
    out_json: Path | None = None,
    plot_path: Path | None = None,
) -> JobOutput:
    common: dict[str, Any] = dict(
        metric=settings.metric,
        intervention=settings.intervention,
        batch_size=settings.batch_size,
        progress=settings.progress,
    )
    result = attribute(
        model,
        task,
        settings.method,
        ig_steps=settings.ig_steps,
        ig_rule=settings.ig_rule,
        aggregation=settings.aggregation,
        neurons=settings.neurons,
        probe=settings.probe,
        **common,
    )
    amount = default_amount(settings, result.graph.n_edges)
    circuit = select(result.graph, result.scores, settings.selection, amount)
    curve = curve_circuits(result.graph, result.scores) if settings.curve else []
    clean, empty, values = circuit_metrics(model, task, [circuit, *curve], **common)
    value, faithful = values[0], faithfulness(values[0], clean, empty)
    evaluation = curve_from(CURVE_PERCENTS, curve, clean, empty, values[1:]) if curve else None
    evaluation_props: dict[str, object] = {
        "circuit_edges": int(circuit.sum()),
        "selection": settings.selection,
        "selection_amount": amount,
        "circuit_metric": value,
        "faithfulness": faithful,
    }
    if evaluation is not None:
        evaluation_props |= {
            "cpr": evaluation.cpr,
            "cmd": evaluation.cmd,
            "curve_percents": [p.percent for p in evaluation.points],
            "curve_faithfulness": [p.faithfulness for p in evaluation.points],
        }
    document = eap_ig_document(result, circuit, model.d_model)
    graph = to_circuit_graph(
        document, result, graph_id=graph_id, model_name=model.name, evaluation=evaluation_props
    )
    output = JobOutput(result, circuit, faithful, value, evaluation, graph)
    if out_json is not None:
        output.files["graph json"] = write_eap_ig_json(document, out_json)
    if evaluation is not None and plot_path is not None:
        title = f"{model.name} · {task.name} · {result.method}"
        output.files["faithfulness plot"] = plot_curve(evaluation, plot_path, title)
    return output
