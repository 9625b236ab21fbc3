"""Node ablation versus edge ablation: how much of the model's behaviour a feature circuit keeps.

A circuit is a set of nodes ``N`` and a set of edges ``E`` among them. Ablating a node sets it to
its ablated value (the corrupted prompt's, zero or the mean: the circuit's ``--intervention``)
on *every* route; ablating an edge ``u → d`` removes one route: ``d`` is computed as if ``u``
had its ablated value, while ``u``'s other children see its value. In general every node is
computed from its site's direct parents (:func:`.sites.parents`) with some incoming edges
ablated:

* **node ablation** of the circuit: nodes outside ``N`` ablated, nodes in ``N`` computed from
  everything that arrives (every route among kept nodes counts, in ``E`` or not);
* **edge ablation** of the circuit: nodes outside ``N`` ablated, and a node in ``N`` sees only
  its incoming edges in ``E`` (an edge between kept nodes that is not in ``E`` is ablated);
* the **complements**: node ablation of ``N`` only (everything else live), and edge ablation of
  ``E`` only.

With ``m`` the metric summed over examples, ``m(M)`` the clean model and ``m(∅)`` every node
ablated, **faithfulness** is ``(m(circuit) − m(∅)) / (m(M) − m(∅))`` and **completeness** is
``1 −`` the faithfulness of the complement (1 when the complement alone does nothing). The two
ablations agree when ``E`` holds every edge among ``N`` (a test checks it); the gap between them
measures the routes a node set carries beyond the edges kept.

Each node with an ablated incoming edge needs a forward pass of its own (its parents' values
differ from every other node's), so edge ablation costs one pass per such node and site.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch

from circuit_atlas.ingest.attribution.model_adapter import LoadedModel
from circuit_atlas.ingest.attribution.tasks import Batch
from circuit_atlas.ingest.sae_circuits.effects import MetricFn, patch_values, site_values
from circuit_atlas.ingest.sae_circuits.sites import Site, parents
from circuit_atlas.ingest.sae_circuits.spliced import Fixed, Nodes, run_spliced

Node = tuple[int, int]  # (pos or -1 for every position, feature or -1 for the error)
SiteNode = tuple[int, Node]


@dataclass
class Ablation:
    """Which nodes compute (``live``, per site) and which edges into them carry ablated values
    (``cut[(site, node)]`` = upstream ``(site, node)``s). With ``inverted``, ``live`` lists the
    nodes that are ablated and every other node computes (a complement, without spelling out
    every feature of every site)."""

    live: dict[int, set[Node]]
    cut: dict[SiteNode, set[SiteNode]] = field(default_factory=dict)
    inverted: bool = False


def masks(nodes: Iterable[Node], like: Nodes) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean ``[batch, pos, d_features]`` and ``[batch, pos, 1]`` masks of ``nodes``, set by
    index tensors (one write per kind of node, not per node)."""
    device = like.features.device
    keep_f = torch.zeros(like.features.shape, dtype=torch.bool, device=device)
    keep_e = torch.zeros((*like.error.shape[:2], 1), dtype=torch.bool, device=device)
    width = like.error.shape[1]
    every_f = [f for p, f in nodes if p < 0 and f >= 0]
    at_f = [(p, f) for p, f in nodes if 0 <= p < width and f >= 0]
    every_e = any(p < 0 and f < 0 for p, f in nodes)
    at_e = [p for p, f in nodes if 0 <= p < width and f < 0]
    if every_f:
        keep_f[:, :, torch.tensor(every_f, device=device)] = True
    if at_f:
        index = torch.tensor(at_f, device=device)
        keep_f[:, index[:, 0], index[:, 1]] = True
    if every_e:
        keep_e[:] = True
    if at_e:
        keep_e[:, torch.tensor(at_e, device=device)] = True
    return keep_f, keep_e


def mixed(values: Nodes, ablated: Nodes, keep: Iterable[Node], all_live: bool) -> Nodes:
    """``values`` where a node is kept, ``ablated`` elsewhere (``all_live``: keep = every node
    but the given ones)."""
    keep_f, keep_e = masks(keep, values)
    if all_live:
        keep_f, keep_e = ~keep_f, ~keep_e
    return Nodes(
        torch.where(keep_f, values.features, ablated.features),
        torch.where(keep_e, values.error, ablated.error),
    )


def is_live(node: Node, live: set[Node], width: int, inverted: bool = False) -> bool:
    """Whether ``node`` computes: listed, or (a node summed over positions) listed at every
    position; with ``inverted`` (``live`` lists the ablated nodes), not covered by the list."""
    pos, feature = node
    if inverted:
        if pos < 0:
            return (pos, feature) not in live and not any(f == feature for _, f in live)
        return node not in live and (-1, feature) not in live
    return node in live or (pos < 0 and all((p, feature) in live for p in range(width)))


def _select(nodes: Nodes, node: Node) -> tuple[torch.Tensor, torch.Tensor]:
    keep_f, keep_e = masks([node], nodes)
    return keep_f, keep_e


def ablated_logits(
    model: LoadedModel, sites: list[Site], batch: Batch, ablated: list[Nodes], plan: Ablation
) -> torch.Tensor:
    """Logits with ``plan`` applied, site by site in forward order."""
    values: list[Nodes] = []
    with torch.no_grad():
        for index in range(len(sites)):
            fixed = {p: Fixed(values[p]) for p in parents(sites, index)}
            _, recorded = run_spliced(model, sites, batch.clean, fixed)
            plain = recorded[index]
            live = plan.live.get(index, set())
            site_nodes = mixed(plain, ablated[index], live, all_live=plan.inverted)
            width = int(batch.clean.shape[1])
            for (site, node), cut in plan.cut.items():
                if site != index or not is_live(node, live, width, plan.inverted):
                    continue
                special = {}
                for p in parents(sites, index):
                    dropped = [n for s, n in cut if s == p]
                    special[p] = Fixed(mixed(values[p], ablated[p], dropped, all_live=True))
                _, again = run_spliced(model, sites, batch.clean, special)
                keep_f, keep_e = _select(again[index], node)
                site_nodes = Nodes(
                    torch.where(keep_f, again[index].features, site_nodes.features),
                    torch.where(keep_e, again[index].error, site_nodes.error),
                )
            values.append(site_nodes)
        last = max(i for i, s in enumerate(sites) if s.name == "resid")
        logits, _ = run_spliced(model, sites, batch.clean, {last: Fixed(values[last])})
    return logits


@dataclass(frozen=True)
class CircuitSpec:
    nodes: dict[int, set[Node]]
    edges: set[tuple[SiteNode, SiteNode]]  # (upstream, downstream)


def every_node(sites: list[Site], width: int) -> dict[int, set[Node]]:
    """Every node of every site, spelled out per position (for tests and small models: the
    plans use ``Ablation.inverted`` instead)."""
    return {
        i: {(p, f) for p in range(width) for f in [*range(site.d_features), -1]}
        for i, site in enumerate(sites)
    }


def plans(spec: CircuitSpec, sites: list[Site], width: int) -> dict[str, Ablation]:
    """The four ablations of :mod:`this module <.ablation>`'s docstring."""
    kept = {(s, n) for s, nodes in spec.nodes.items() for n in nodes}
    edge_cut: dict[SiteNode, set[SiteNode]] = {}
    for down_site, nodes in spec.nodes.items():
        ups = parents(sites, down_site)
        for node in nodes:
            incoming = {
                (u, n) for u in ups for n in spec.nodes.get(u, set())
                if ((u, n), (down_site, node)) not in spec.edges
            }  # fmt: skip
            if incoming:
                edge_cut[(down_site, node)] = incoming
    complement_cut: dict[SiteNode, set[SiteNode]] = {}
    for up, down in spec.edges:
        if up in kept and down in kept:
            complement_cut.setdefault(down, set()).add(up)
    return {
        "node": Ablation(spec.nodes),
        "edge": Ablation(spec.nodes, edge_cut),
        "node_complement": Ablation(spec.nodes, inverted=True),
        "edge_complement": Ablation({}, complement_cut, inverted=True),
    }


@dataclass(frozen=True)
class AblationScores:
    faithfulness_node: float
    faithfulness_edge: float
    completeness_node: float
    completeness_edge: float
    n_nodes: int
    n_edges: int


def evaluate(
    model: LoadedModel,
    sites: list[Site],
    batches: list[Batch],
    metric: MetricFn,
    spec: CircuitSpec,
    patch: str,
) -> AblationScores:
    """Faithfulness and completeness of ``spec`` under node and edge ablation, over batches."""
    sums = {"clean": 0.0, "empty": 0.0, "node": 0.0, "edge": 0.0,
            "node_complement": 0.0, "edge_complement": 0.0}  # fmt: skip
    for batch in batches:
        clean = site_values(model, sites, batch.clean)
        ablated = patch_values(model, sites, batch, clean, patch)
        with torch.no_grad():
            sums["clean"] += float(metric(model.run(batch.clean), batch).sum())
        empty = Ablation({})
        sums["empty"] += float(
            metric(ablated_logits(model, sites, batch, ablated, empty), batch).sum()
        )
        for name, plan in plans(spec, sites, int(batch.clean.shape[1])).items():
            logits = ablated_logits(model, sites, batch, ablated, plan)
            sums[name] += float(metric(logits, batch).sum())
    span = sums["clean"] - sums["empty"]

    def share(value: float) -> float:
        return (value - sums["empty"]) / span if span else float("nan")

    return AblationScores(
        faithfulness_node=share(sums["node"]),
        faithfulness_edge=share(sums["edge"]),
        completeness_node=1.0 - share(sums["node_complement"]),
        completeness_edge=1.0 - share(sums["edge_complement"]),
        n_nodes=sum(len(v) for v in spec.nodes.values()),
        n_edges=len(spec.edges),
    )


def top_circuits(
    effects: Mapping[SiteNode, float],
    edges: Mapping[tuple[SiteNode, SiteNode], float],
    sizes: Iterable[int],
) -> list[CircuitSpec]:
    """Circuits of the ``k`` nodes of largest |effect| for each ``k`` in ``sizes``, with the
    given edges among them."""
    ranked = sorted(effects, key=lambda n: (-abs(effects[n]), n))
    out = []
    for k in sizes:
        chosen = set(ranked[:k])
        nodes: dict[int, set[Node]] = {}
        for site, node in chosen:
            nodes.setdefault(site, set()).add(node)
        kept_edges = {e for e in edges if e[0] in chosen and e[1] in chosen}
        out.append(CircuitSpec(nodes, kept_edges))
    return out
