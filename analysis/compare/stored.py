"""Comparison and consensus over stored graphs (read, compute, write back)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuit_atlas.analysis.compare.consensus import check_align, consensus_graph, position_shifts
from circuit_atlas.analysis.compare.pairwise import Comparison, compare_graphs
from circuit_atlas.analysis.scores.stored import load_for_analysis
from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.graph import CircuitGraph

if TYPE_CHECKING:
    from circuit_atlas.store import CircuitStore, WriteResult


def select_graph_ids(
    store: CircuitStore, graph_ids: list[str], contains: str | None, model: str | None
) -> list[str]:
    """Explicit ids, or every stored graph matching ``contains``/``model``."""
    if graph_ids and (contains or model):
        raise CircuitAtlasError("give graph ids or --contains/--model, not both")
    if graph_ids:
        for graph_id in graph_ids:
            store.graph_info(graph_id)  # a clear GraphNotFound
        return list(graph_ids)
    listed = store.list_graphs(model=model, contains=contains)["graph_id"].tolist()
    if not listed:
        raise CircuitAtlasError("no stored graph matches the selection")
    return listed


def load_graphs(store: CircuitStore, graph_ids: list[str]) -> list[CircuitGraph]:
    return [load_for_analysis(store, graph_id).graph for graph_id in graph_ids]


def compare_stored(
    store: CircuitStore, graph_ids: list[str], by: str = "feature", allow_mixed: bool = False
) -> Comparison:
    return compare_graphs(load_graphs(store, graph_ids), by, allow_mixed)


def store_consensus(
    store: CircuitStore,
    graph_ids: list[str],
    min_fraction: float = 0.5,
    graph_id: str | None = None,
    replace: bool = False,
    allow_mixed: bool = False,
    align: str = "start",
) -> tuple[WriteResult, CircuitGraph]:
    """Build the consensus graph, store it, and link it ``DERIVED_FROM`` each source graph.

    Each link records the operation, the fraction, the alignment and ``position_shift``, the
    positions added to that source's nodes (a source position is the consensus one minus it)."""
    check_align(align)
    graphs = load_graphs(store, graph_ids)
    consensus = consensus_graph(graphs, min_fraction, graph_id, allow_mixed, align)
    shifts = position_shifts(graphs, align)
    links = {
        source: {
            "operation": "consensus",
            "min_fraction": min_fraction,
            "align": align,
            "position_shift": shifts[source],
        }
        for source in graph_ids
    }
    return store.write_derived(consensus, links, replace=replace), consensus
