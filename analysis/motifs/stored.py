"""Motif censuses of stored graphs, written back next to them.

    (:MotifStat {stat_id, graph_id, motif, null_model, observed, null_mean, null_std, z,
                 n_samples, seed, min_abs_weight})-[:STAT_OF]->(:Graph)

One node per (graph, null model, motif). A new census of a graph replaces its old one whole
(the last run's parameters are on every row), so the store never mixes runs; deleting the
graph deletes them. Each graph is read, censused and written before the next is read, so a
corpus run holds one graph in memory and a failure keeps what was finished.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from circuit_atlas.analysis.motifs.enrichment import MotifEnrichment, motif_enrichment
from circuit_atlas.analysis.motifs.null_models import NULL_MODELS
from circuit_atlas.analysis.scores.stored import load_for_analysis
from circuit_atlas.errors import CircuitAtlasError

if TYPE_CHECKING:
    from circuit_atlas.store import CircuitStore


def stat_rows(
    graph_id: str, rows: list[MotifEnrichment], seed: int, min_abs_weight: float
) -> list[dict[str, Any]]:
    return [
        {
            "stat_id": f"{graph_id}/{row.null_model}/{row.motif}",
            "graph_id": graph_id,
            "motif": row.motif,
            "null_model": row.null_model,
            "observed": int(row.observed),
            "null_mean": float(row.null_mean),
            "null_std": float(row.null_std),
            "z": None if row.z is None else float(row.z),
            "n_samples": int(row.n_samples),
            "seed": int(seed),
            "min_abs_weight": float(min_abs_weight),
        }
        for row in rows
    ]


def census_stored(
    store: CircuitStore,
    graph_ids: Sequence[str],
    null_models: Sequence[str] = tuple(NULL_MODELS),
    n_samples: int = 20,
    seed: int = 0,
    min_abs_weight: float = 0.0,
    write: bool = True,
    on_graph: Callable[[str], None] | None = None,
) -> dict[str, list[MotifEnrichment]]:
    """Census and enrichment of each graph (written back unless ``write=False``)."""
    unknown = sorted(set(null_models) - set(NULL_MODELS))
    if unknown:
        raise CircuitAtlasError(
            f"unknown null model(s) {', '.join(unknown)}: choose from {', '.join(NULL_MODELS)}"
        )
    if n_samples < 2:
        raise CircuitAtlasError("--samples must be at least 2 (a z-score needs a spread)")
    for graph_id in graph_ids:
        store.graph_info(graph_id)  # every id checked before the first census
    results: dict[str, list[MotifEnrichment]] = {}
    for graph_id in graph_ids:
        graph = load_for_analysis(store, graph_id).graph
        rows = motif_enrichment(graph, tuple(null_models), n_samples, seed, min_abs_weight)
        if write:
            store.write_motif_stats(graph_id, stat_rows(graph_id, rows, seed, min_abs_weight))
        results[graph_id] = rows
        if on_graph is not None:
            on_graph(graph_id)
    return results
