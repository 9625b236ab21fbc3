"""A sparse feature circuit over a task: node effects, then edges among the nodes that matter,
as a ``CircuitGraph`` stored like every other graph.

Two passes over the task's batches. The first sums every node's effect over examples
(:mod:`.effects`; ``ig_steps = 1`` is attribution patching, more is integrated gradients) and
keeps the nodes whose |effect| (summed, or averaged with ``aggregation="mean"``) reaches
``node_threshold``. The second computes, for each kept node, its edges from every node of its
parent sites, and keeps those between kept nodes with |effect| ≥ ``edge_threshold``. The
metric is a node of its own (kind ``logits``); the last residual-stream site's kept nodes link to
it with their node effects, as in feature-circuits.

Nodes are per position (``positions="each"``: position ``p`` is the ``p``-th token of every
example, for templated tasks) or summed over positions (``"sum"``, the default).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.graph import CircuitGraph, GraphMetadata, NodeKey, NodeKind
from circuit_atlas.ingest.attribution.metrics import get_metric
from circuit_atlas.ingest.attribution.model_adapter import LoadedModel
from circuit_atlas.ingest.attribution.tasks import Batch, Task
from circuit_atlas.ingest.sae_circuits.ablation import AblationScores, evaluate, top_circuits
from circuit_atlas.ingest.sae_circuits.effects import (
    PATCHES,
    BatchState,
    MetricFn,
    SiteEffects,
    attribution_patching,
    batch_state,
    edge_blocks,
    integrated_gradients,
)
from circuit_atlas.ingest.sae_circuits.sites import Site, parents

METHOD = "sae-feature-circuit"
POSITIONS = ("sum", "each")


@dataclass(frozen=True)
class CircuitSettings:
    metric: str | None = None  # None: the task's default
    ig_steps: int = 10  # 1 = attribution patching
    patch: str = "patching"
    aggregation: str = "sum"  # over examples: "sum" | "mean"
    positions: str = "sum"
    node_threshold: float = 0.1
    edge_threshold: float = 0.01
    batch_size: int = 8
    curve: bool = True  # faithfulness/completeness under node and edge ablation, by size
    progress: bool = False

    def check(self) -> None:
        if self.patch not in PATCHES:
            raise CircuitAtlasError(f"unknown patch {self.patch!r}: choose {', '.join(PATCHES)}")
        if self.positions not in POSITIONS:
            raise CircuitAtlasError(f"positions must be one of {', '.join(POSITIONS)}")
        if self.aggregation not in ("sum", "mean"):
            raise CircuitAtlasError("aggregation must be sum or mean")
        if self.ig_steps < 1:
            raise CircuitAtlasError("--ig-steps must be at least 1 (1 = attribution patching)")
        if self.node_threshold < 0 or self.edge_threshold < 0:
            raise CircuitAtlasError("thresholds are magnitudes: give values ≥ 0")


def metric_function(name: str) -> MetricFn:
    metric = get_metric(name)
    if name == "kl":
        raise CircuitAtlasError(
            "the kl metric is 0 with a zero gradient on the clean prompt; feature circuits take "
            "gradients there: use logit_diff or prob_diff"
        )
    return lambda logits, batch: metric(logits, batch, None)


def _effects_of_batch(
    model: LoadedModel, sites: list[Site], batch: Batch, metric: MetricFn,
    state: BatchState, steps: int,
) -> list[SiteEffects]:  # fmt: skip
    if steps == 1:
        return [attribution_patching(state, i) for i in range(len(sites))]
    return [
        integrated_gradients(model, sites, batch, metric, state, i, steps)
        for i in range(len(sites))
    ]


def _add(total: torch.Tensor | None, part: torch.Tensor) -> torch.Tensor:
    """Sum tensors whose first (position) dimension may differ between batches."""
    if total is None:
        return part.clone()
    width = max(total.shape[0], part.shape[0])
    out = total.new_zeros((width, *total.shape[1:]))
    out[: total.shape[0]] += total
    out[: part.shape[0]] += part
    return out


@dataclass
class SiteTotals:
    features: torch.Tensor | None = None  # [pos, d_features]
    error: torch.Tensor | None = None  # [pos]


def node_effects(
    model: LoadedModel, sites: list[Site], task: Task, metric: MetricFn, settings: CircuitSettings
) -> list[SiteTotals]:
    """Every node's effect, summed over the task's examples (pass 1)."""
    totals = [SiteTotals() for _ in sites]
    batches = list(task.batches(settings.batch_size, model.pad_id))
    for batch in tqdm(batches, desc="node effects", disable=not settings.progress):
        batch = batch.to(model.device)
        state = batch_state(model, sites, batch, metric, settings.patch)
        for total, part in zip(
            totals, _effects_of_batch(model, sites, batch, metric, state, settings.ig_steps)
        ):
            features, error = part.summed()
            total.features = _add(total.features, features.detach())
            total.error = _add(total.error, error.detach())
    return totals


def _collapse(t: torch.Tensor, positions: str) -> torch.Tensor:
    """``[pos, …]`` → itself, or summed over positions as one position ``-1`` (``[1, …]``)."""
    return t if positions == "each" else t.sum(0, keepdim=True)


@dataclass(frozen=True)
class Kept:
    """Kept nodes of one site: ``(pos, feature)`` (``feature = -1`` the error; ``pos = -1``
    summed over positions) with their effects."""

    nodes: list[tuple[int, int]]
    effects: list[float]


def kept_nodes(totals: list[SiteTotals], settings: CircuitSettings, n_examples: int) -> list[Kept]:
    scale = 1.0 / n_examples if settings.aggregation == "mean" else 1.0
    kept = []
    for total in totals:
        assert total.features is not None and total.error is not None
        features = _collapse(total.features, settings.positions) * scale
        error = _collapse(total.error, settings.positions) * scale
        nodes, effects = [], []
        offset = 0 if settings.positions == "each" else -1
        for pos, feature in torch.nonzero(features.abs() >= settings.node_threshold).tolist():
            nodes.append((pos if offset == 0 else -1, feature))
            effects.append(float(features[pos, feature]))
        for (pos,) in torch.nonzero(error.abs() >= settings.node_threshold).tolist():
            nodes.append((pos if offset == 0 else -1, -1))
            effects.append(float(error[pos]))
        kept.append(Kept(nodes, effects))
    return kept


EdgeKey = tuple[int, tuple[int, int], int, tuple[int, int]]  # (site, node) → (site, node)
SiteNode = tuple[int, tuple[int, int]]


@dataclass
class PerExample:
    """A kept node's value on each example's clean prompt (a feature's activation, an error
    term's norm; summed over positions for nodes that are) and its effect on each example: what
    functional-connectivity ROIs correlate (``analysis/roi/affinity.py``)."""

    activations: list[float]
    effects: list[float]


def _node_value(values: torch.Tensor, pos: int) -> torch.Tensor:
    """``[batch, pos]`` values → ``[batch]`` at ``pos`` or summed over positions."""
    return (
        values.sum(1) if pos < 0 else values[:, pos] if pos < values.shape[1] else values[:, 0] * 0
    )


def record_examples(
    state: BatchState,
    effects: list[SiteEffects],
    kept: list[Kept],
    into: dict[SiteNode, PerExample],
    valid: torch.Tensor,
) -> None:
    """Append each kept node's per-example activation and effect; padding positions (past an
    example's last token) count as 0, so an example's values do not depend on its batch."""
    real = valid.to(state.clean[0].error.dtype)
    for site, k in enumerate(kept):
        clean = state.clean[site]
        for node in k.nodes:
            pos, feature = node
            if feature < 0:
                value = _node_value(clean.error.norm(dim=-1) * real, pos)
                effect = _node_value(effects[site].error * real, pos)
            else:
                value = _node_value(clean.features[..., feature] * real, pos)
                effect = _node_value(effects[site].features[..., feature] * real, pos)
            entry = into.setdefault((site, node), PerExample([], []))
            entry.activations.extend(float(v) for v in value)
            entry.effects.extend(float(v) for v in effect)


def edge_effects(
    model: LoadedModel,
    sites: list[Site],
    task: Task,
    metric: MetricFn,
    settings: CircuitSettings,
    kept: list[Kept],
) -> tuple[dict[EdgeKey, float], dict[SiteNode, PerExample]]:
    """Edges between kept nodes of consecutive sites, summed over examples, and each kept node's
    per-example values (pass 2)."""
    totals: dict[EdgeKey, float] = {}
    per_example: dict[SiteNode, PerExample] = {}
    targets = {i: k.nodes for i, k in enumerate(kept)}
    kept_sets = [set(k.nodes) for k in kept]
    batches = list(task.batches(settings.batch_size, model.pad_id))
    for batch in tqdm(batches, desc="edges", disable=not settings.progress):
        batch = batch.to(model.device)
        state = batch_state(model, sites, batch, metric, settings.patch)
        effects = _effects_of_batch(model, sites, batch, metric, state, settings.ig_steps)
        record_examples(state, effects, kept, per_example, batch.valid)
        for upstream in range(len(sites)):
            if not kept[upstream].nodes:
                continue
            children = {c: targets[c] for c in range(len(sites)) if upstream in parents(sites, c)}
            if not any(children.values()):
                continue
            for block in edge_blocks(model, sites, batch, state, upstream, children):
                for target, features, error in zip(block.targets, block.features, block.error):
                    features = _collapse(features.detach(), settings.positions)
                    error = _collapse(error.detach(), settings.positions)
                    for node in kept[upstream].nodes:
                        pos, feature = node
                        row = max(pos, 0)
                        if row >= features.shape[0]:
                            continue
                        value = float(error[row] if feature < 0 else features[row, feature])
                        key = (upstream, node, block.downstream, target)
                        totals[key] = totals.get(key, 0.0) + value
    scale = 1.0 / len(task.examples) if settings.aggregation == "mean" else 1.0
    edges = {
        key: value * scale
        for key, value in totals.items()
        if key[1] in kept_sets[key[0]] and abs(value * scale) >= settings.edge_threshold
    }
    return edges, per_example


def _node_key(site: Site, node: tuple[int, int]) -> NodeKey:
    pos, feature = node
    where = None if pos < 0 else pos
    if feature < 0:
        return NodeKey(NodeKind(f"{site.name}_error").value, site.layer, where)
    return NodeKey(NodeKind(f"{site.name}_feature").value, site.layer, where, feature)


def feature_circuit(
    model: LoadedModel,
    sites: list[Site],
    task: Task,
    settings: CircuitSettings,
    graph_id: str,
    saes_source: str = "",
) -> CircuitGraph:
    """The whole job: node effects, kept nodes, edges, one graph."""
    settings.check()
    metric_name = settings.metric or task.default_metric
    metric = metric_function(metric_name)
    totals = node_effects(model, sites, task, metric, settings)
    kept = kept_nodes(totals, settings, len(task.examples))
    edges, per_example = edge_effects(model, sites, task, metric, settings, kept)
    graph = circuit_graph(sites, kept, edges, settings, graph_id, model, task, metric_name,
                          saes_source, per_example)  # fmt: skip
    if settings.curve:
        curve = ablation_curve(model, sites, task, metric, settings, kept, edges)
        graph.metadata.extra["ablation_curve"] = [asdict(point) for point in curve]
    return graph


def curve_sizes(n: int, points: int = 6) -> list[int]:
    """Circuit sizes for a curve: about ``points`` sizes from 1 to ``n``, spaced geometrically."""
    if n <= 0:
        return []
    sizes = {max(1, round(n ** (i / (points - 1)))) for i in range(points)}
    return sorted(sizes | {n})


def ablation_curve(
    model: LoadedModel,
    sites: list[Site],
    task: Task,
    metric: MetricFn,
    settings: CircuitSettings,
    kept: list[Kept],
    edges: dict[EdgeKey, float],
) -> list[AblationScores]:
    """Faithfulness and completeness, under node and under edge ablation, of the circuits of
    the top-k kept nodes (by |effect|) with the kept edges among them."""
    effects = {
        (s, node): effect for s, k in enumerate(kept) for node, effect in zip(k.nodes, k.effects)
    }
    graph_edges = {((u, un), (d, dn)): w for (u, un, d, dn), w in edges.items()}
    batches = [b.to(model.device) for b in task.batches(settings.batch_size, model.pad_id)]
    specs = top_circuits(effects, graph_edges, curve_sizes(len(effects)))
    return [
        evaluate(model, sites, batches, metric, spec, settings.patch)
        for spec in tqdm(specs, desc="ablation curve", disable=not settings.progress)
    ]


def circuit_graph(
    sites: list[Site],
    kept: list[Kept],
    edges: dict[EdgeKey, float],
    settings: CircuitSettings,
    graph_id: str,
    model: LoadedModel,
    task: Task,
    metric_name: str,
    saes_source: str,
    per_example: dict[SiteNode, PerExample] | None = None,
) -> CircuitGraph:
    """The graph: kept nodes (with ``node_effect``, per-example ``example_activations`` and
    ``example_effects``, and a feature's ``decoder`` direction), kept edges, the metric node."""
    per_example = per_example or {}
    rows: list[dict[str, Any]] = []
    index: dict[tuple[int, tuple[int, int]], int] = {}
    for s, (site, k) in enumerate(zip(sites, kept)):
        for node, effect in zip(k.nodes, k.effects):
            key = _node_key(site, node)
            index[(s, node)] = len(rows)
            examples = per_example.get((s, node))
            decoder = (
                site.sae.W_dec[node[1]].detach().cpu().tolist()
                if site.sae is not None and node[1] >= 0
                else None
            )
            rows.append({**key._asdict(), "influence": None, "node_effect": effect,
                         "label": key.display_id(),
                         "example_activations": examples.activations if examples else None,
                         "example_effects": examples.effects if examples else None,
                         "decoder": decoder})  # fmt: skip
    metric_row = len(rows)
    rows.append({**NodeKey(NodeKind.LOGITS.value)._asdict(), "label": f"metric: {metric_name}"})
    sources, targets, weights = [], [], []
    for (up, node, down, target), weight in edges.items():
        if (down, target) in index:
            sources.append(index[(up, node)])
            targets.append(index[(down, target)])
            weights.append(weight)
    last = max(i for i, site in enumerate(sites) if site.name == "resid")
    for node, effect in zip(kept[last].nodes, kept[last].effects):
        sources.append(index[(last, node)])
        targets.append(metric_row)
        weights.append(effect)
    metadata = GraphMetadata(
        graph_id=graph_id,
        model=model.name,
        method=METHOD,
        source_tool="circuit-atlas",
        extra={
            "sae_circuit": {**asdict(settings), "metric": metric_name, "saes": saes_source},
            "task": task.name,
            "n_examples": len(task.examples),
            "sites_with_saes": [s.label for s in sites if s.sae is not None],
        },
    )
    nodes = pd.DataFrame(rows)
    edge_table = pd.DataFrame(
        {
            "source": np.array(sources, dtype=np.int64),
            "target": np.array(targets, dtype=np.int64),
            "weight": np.array(weights, dtype=np.float64),
        }  # fmt: skip
    )
    return CircuitGraph(nodes, edge_table, metadata)
