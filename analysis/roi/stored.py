"""ROIs of stored graphs: compute, then write ROIs, memberships and the quotient graph back."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from circuit_atlas.analysis.compare.stored import load_graphs
from circuit_atlas.analysis.roi.affinity import (
    EDGE_PROFILE,
    FUNCTIONAL_KINDS,
    Affinity,
    cross_prompt_affinity,
    edge_profile_affinity,
    functional_affinity,
    graph_affinity,
    parse_feature_id,
)
from circuit_atlas.analysis.roi.algorithms import RoiParams
from circuit_atlas.analysis.roi.decoders import Decoders
from circuit_atlas.analysis.roi.detect import RoiResult, detect, run_method
from circuit_atlas.analysis.roi.quotient import quotient_graph
from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.graph import CircuitGraph, NodeKey, NodeKind

if TYPE_CHECKING:
    from circuit_atlas.store import CircuitStore


@dataclass(frozen=True)
class StoredRois:
    result: RoiResult
    quotient: CircuitGraph
    written: bool


def affinity_for(
    graphs: list[CircuitGraph],
    affinity_kind: str,
    min_graphs: int,
    allow_mixed: bool,
    subgraph: tuple[str, list[str]] | None = None,
) -> Affinity:
    """What to cluster; ``subgraph``: ``(name, node keys)`` limiting an edge-profile run."""
    if not graphs:
        raise CircuitAtlasError("no graphs given")
    if affinity_kind in FUNCTIONAL_KINDS:
        if subgraph is not None:
            raise CircuitAtlasError("--subgraph limits --affinity edge-profile only")
        if len(graphs) != 1:
            raise CircuitAtlasError(f"--affinity {affinity_kind} groups the nodes of one circuit")
        return functional_affinity(graphs[0], affinity_kind)
    if affinity_kind == EDGE_PROFILE or subgraph is not None:
        if len(graphs) != 1 or affinity_kind != EDGE_PROFILE:
            raise CircuitAtlasError(
                "--affinity edge-profile (and --subgraph) group the nodes of one graph"
            )
        name, members = subgraph if subgraph is not None else (None, None)
        return edge_profile_affinity(graphs[0], members, name)
    if len(graphs) == 1:
        return graph_affinity(graphs[0])
    return cross_prompt_affinity(graphs, affinity_kind, min_graphs, allow_mixed)


def bootstrap_stability(
    graphs: list[CircuitGraph],
    result: RoiResult,
    affinity_kind: str,
    min_graphs: int,
    resamples: int,
) -> float:
    """Mean ARI between the full run and runs on prompts resampled with replacement, over the
    features both contain."""
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(result.params.seed)
    full = dict(zip(result.affinity.ids, result.labels))
    scores = []
    for _ in range(resamples):
        picks = rng.integers(0, len(graphs), len(graphs))
        sample = [graphs[p] for p in picks]  # a graph drawn twice counts twice
        try:
            affinity = cross_prompt_affinity(sample, affinity_kind, min_graphs, allow_mixed=True)
            labels, _ = run_method(affinity, result.method, result.params)
        except CircuitAtlasError:
            continue
        shared = [i for i, f in enumerate(affinity.ids) if f in full]
        if len(shared) > 1:
            scores.append(
                adjusted_rand_score([full[affinity.ids[i]] for i in shared], labels[shared])
            )
    return float(np.mean(scores)) if scores else float("nan")


def roi_rows(result: RoiResult, quotient_id: str) -> list[dict[str, Any]]:
    members = result.members()
    rows = []
    for index in range(result.n_rois):
        part = members[members["roi"] == index]
        layers = part["layer"][part["layer"] >= 0]
        rows.append(
            {
                "roi_id": f"{result.run_id}/{index}",
                "run_id": result.run_id,
                "index": index,
                "method": result.method,
                "params_json": json.dumps(result.used_params, sort_keys=True),
                "min_graphs": result.affinity.min_graphs,
                "affinity": result.affinity.kind,
                "scope": result.affinity.scope,
                "graph_ids": sorted(result.affinity.graph_ids),
                "size": int(len(part)),
                "min_layer": int(layers.min()) if len(layers) else None,
                "max_layer": int(layers.max()) if len(layers) else None,
                "modularity": result.quality["modularity"],
                "decoder_cosine": result.decoder.per_roi[index] if result.decoder else None,
                "quotient_graph_id": quotient_id,
                "quotient_key": NodeKey(NodeKind.ROI.value, feature=index).encode(),
            }
        )
    return rows


def node_decoders(graph: CircuitGraph) -> Decoders | None:
    """The decoder directions a feature circuit stores on its feature nodes (``decoder``), keyed
    by node key, so functional ROIs report their within-ROI decoder cosine; None without any."""
    if "decoder" not in graph.nodes:
        return None
    keys = graph.keys()
    found = [(keys[i].encode(), v) for i, v in enumerate(graph.nodes["decoder"])
             if isinstance(v, (list, np.ndarray))]  # fmt: skip
    if not found:
        return None
    widths = {len(v) for _, v in found}
    if len(widths) != 1:  # sites of one model share d_model; anything else is not comparable
        return None
    return Decoders(
        source=f"the decoder directions stored on {graph.graph_id!r}",
        row={key: i for i, (key, _) in enumerate(found)},
        vectors=np.array([np.asarray(v, dtype=np.float64) for _, v in found]),
        model=graph.metadata.model,
    )


def check_run_inputs(graph_ids: list[str], bootstrap: int, decoders: Decoders | None) -> None:
    """Reject, before any graph is read, runs whose options cannot apply to their graphs."""
    twice = sorted(g for g, n in Counter(graph_ids).items() if n > 1)
    if twice:
        raise CircuitAtlasError(
            f"a graph is listed twice ({', '.join(twice)}); each graph is one prompt"
        )
    if len(graph_ids) < 2 and bootstrap:
        raise CircuitAtlasError(
            "--bootstrap resamples prompts, so it needs at least two graphs; for the ROIs of "
            "one graph use --stability (reruns with other seeds)"
        )
    if len(graph_ids) < 2 and decoders is not None:
        raise CircuitAtlasError(
            "--decoders applies to cross-prompt ROIs (at least two graphs), whose members are "
            "features"
        )


def roi_stored(
    store: CircuitStore,
    graph_ids: list[str],
    method: str,
    params: RoiParams | None = None,
    affinity_kind: str = "cooccurrence",
    min_graphs: int = 2,
    allow_mixed: bool = False,
    stability_seeds: int = 0,
    bootstrap: int = 0,
    write: bool = True,
    decoders: Decoders | None = None,
    subgraph: str | None = None,
) -> StoredRois:
    """Detect ROIs and write them back; ``subgraph`` limits an edge-profile run on one graph to
    the pinned nodes of that stored subgraph (and of its supernodes)."""
    params = params or RoiParams()
    check_run_inputs(graph_ids, bootstrap, decoders)
    chosen = None
    if subgraph is not None:
        if len(graph_ids) != 1:
            raise CircuitAtlasError("--subgraph names a subgraph of one graph")
        row = store.subgraph(graph_ids[0], subgraph)
        grouped = [key for group in row["supernodes"] for key in group["members"]]
        chosen = (subgraph, sorted(set(row["members"]) | set(grouped)))
    graphs = load_graphs(store, graph_ids)
    affinity = affinity_for(graphs, affinity_kind, min_graphs, allow_mixed, chosen)
    if decoders is None and affinity_kind in FUNCTIONAL_KINDS:
        decoders = node_decoders(graphs[0])
    if decoders is not None:
        decoders.check_graphs(
            [g.metadata.model or "unknown" for g in graphs],
            [g.metadata.transcoder_set or "unknown" for g in graphs],
        )
    result = detect(affinity, method, params, stability_seeds, decoders)
    if bootstrap:
        stability = bootstrap_stability(graphs, result, affinity_kind, min_graphs, bootstrap)
        result = replace(result, quality={**result.quality, "stability_ari_bootstrap": stability})
    quotient_id = f"{result.run_id}-quotient"
    quotient = quotient_graph(result, graphs, quotient_id)
    if write:
        links = {source: {"operation": "roi-quotient", "method": method} for source in graph_ids}
        store.write_derived(quotient, links, replace=True)
        rows = roi_rows(result, quotient_id)
        if affinity.scope == "graph":
            members = [
                {"roi_id": f"{result.run_id}/{roi}", "key": key}
                for key, roi in zip(affinity.ids, result.labels.tolist())
            ]
            scope = {"graph_id": graph_ids[0], "quotient_graph_id": quotient_id}
            kind = "node"
        else:
            members = [
                dict(
                    zip(("layer", "feature"), parse_feature_id(f)), roi_id=f"{result.run_id}/{roi}"
                )
                for f, roi in zip(affinity.ids, result.labels.tolist())
            ]
            first = graphs[0].metadata
            scope = {
                "model": first.model or "unknown",
                "transcoder_set": first.transcoder_set or "unknown",
                "quotient_graph_id": quotient_id,
            }
            kind = "feature"
        store.write_rois(result.run_id, rows, members, kind, scope)
    return StoredRois(result, quotient, write)
