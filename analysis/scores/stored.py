"""Scores and pruning of stored graphs: read, compute (pure), then write back in one go.

Everything that can fail — an unknown graph, a pinned node that is not in it, a graph the scores
are not defined on — fails before the first write, so a bad request leaves the store as it was.
Scores are computed from the exact adjacency artifact when it is on disk (bit-identical to what
was ingested) and from the database otherwise; the report says which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from circuit_atlas.analysis.scores.attribution_matrix import AttributionMatrix
from circuit_atlas.analysis.scores.pruned_graph import pruned_graph
from circuit_atlas.analysis.scores.pruning import (
    DEFAULT_EDGE_THRESHOLD,
    DEFAULT_NODE_THRESHOLD,
    PruneResult,
    prune,
)
from circuit_atlas.analysis.scores.table import (
    ScoreReport,
    resolve_pinned,
    score_graph,
    subgraph_id,
)
from circuit_atlas.errors import ArtifactUnavailable, InvalidGraphError
from circuit_atlas.graph import CircuitGraph

if TYPE_CHECKING:
    from circuit_atlas.store import CircuitStore, WriteResult


@dataclass(frozen=True)
class StoredScores:
    report: ScoreReport
    source: str  # "artifact" | "database"
    written: bool
    fallback_reason: str | None = None  # why the artifact was not used


@dataclass(frozen=True)
class LoadedGraph:
    graph: CircuitGraph
    source: str  # "artifact" | "database"
    fallback_reason: str | None = None


def load_for_analysis(store: CircuitStore, graph_id: str) -> LoadedGraph:
    """The exact artifact if it is readable, else the graph as stored in the database."""
    store.graph_info(graph_id)  # a clear GraphNotFound first
    try:
        return LoadedGraph(store.read_artifact(graph_id), "artifact")
    except ArtifactUnavailable as exc:
        return LoadedGraph(store.read_graph(graph_id), "database", str(exc))


def _graph_properties(report: ScoreReport, pruning: PruneResult, source: str) -> dict[str, Any]:
    full, pruned = report.row("full"), report.row("pruned")
    return {
        "replacement_score": full.replacement,
        "completeness_score": full.completeness,
        "pruned_replacement_score": pruned.replacement,
        "pruned_completeness_score": pruned.completeness,
        "pruned_n_nodes": int(pruning.node_mask.sum()),
        "pruned_n_dropped": len(pruned.dropped),
        "score_node_threshold": report.node_threshold,
        "score_edge_threshold": report.edge_threshold,
        "scores_source": source,
    }


def _node_rows(graph: CircuitGraph, pruning: PruneResult) -> list[dict[str, Any]]:
    keys = [k.encode() for k in graph.keys()]
    return [
        {
            "node_key": key,
            "props": {
                "score_influence": float(pruning.node_influence[i]),
                "score_cumulative_share": float(pruning.cumulative_share[i]),
                "kept_by_pruning": bool(pruning.node_mask[i]),
            },
        }
        for i, key in enumerate(keys)
    ]


SAVED = "saved"


@dataclass(frozen=True)
class Supernode:
    """A labelled group of a subgraph's pinned nodes (Neuronpedia's ``[label, *node ids]``)."""

    label: str
    members: list[str]  # node specs as the user or the file gave them


def saved_subgraph(graph: CircuitGraph) -> tuple[list[str], list[list[str]]]:
    """The node ids pinned in the view saved with ``graph`` and its supernodes (``[label,
    *node ids]``): Neuronpedia's ``qParams``, which the importer keeps; empty when none."""
    q_params = graph.metadata.extra.get("neuronpedia", {}).get("qParams") or {}
    pinned = [str(node) for node in q_params.get("pinnedIds") or []]
    supernodes = [[str(v) for v in group] for group in q_params.get("supernodes") or [] if group]
    return pinned, supernodes


def parse_supernode(spec: str) -> Supernode:
    """``LABEL=NODE,NODE,…`` (the CLI's ``--supernode``) as a :class:`Supernode`."""
    label, sep, members = spec.rpartition("=")
    nodes = [m.strip() for m in members.split(",") if m.strip()]
    if not sep or not label.strip() or not nodes:
        raise InvalidGraphError(
            f"--supernode {spec!r}: write LABEL=NODE,NODE,… (the nodes pinned with --pinned)"
        )
    return Supernode(label.strip(), nodes)


def _resolve_supernodes(
    graph: CircuitGraph, name: str, supernodes: list[Supernode], pinned_rows: list[int]
) -> list[dict[str, Any]]:
    """Supernodes as ``{"label", "members": [node keys]}``; every member must be pinned (as in
    Neuronpedia, where a supernode groups nodes of the pinned subgraph)."""
    keys = graph.keys()
    pinned = set(pinned_rows)
    resolved = []
    for group in supernodes:
        rows = resolve_pinned(graph, group.members)
        loose = [group.members[i] for i, row in enumerate(rows) if row not in pinned]
        if loose:
            raise InvalidGraphError(
                f"{name}: supernode {group.label!r} groups node(s) {', '.join(loose)} that are "
                "not pinned; a supernode groups pinned nodes"
            )
        resolved.append({"label": group.label, "members": [keys[r].encode() for r in rows]})
    return resolved


def score_stored_graph(
    store: CircuitStore,
    graph_id: str,
    pinned: list[str] | None = None,
    pin_top: list[int] | None = None,
    node_threshold: float = DEFAULT_NODE_THRESHOLD,
    edge_threshold: float = DEFAULT_EDGE_THRESHOLD,
    write: bool = True,
    name: str | None = None,
    saved: bool = False,
    supernodes: list[Supernode] | None = None,
) -> StoredScores:
    """Score a stored graph; ``pinned`` node specs form one subgraph (named ``name``, default
    ``pinned``; ``supernodes`` group its nodes), each ``pin_top`` count another (the top-k
    features by influence), and with ``saved`` the subgraph saved with the graph itself (a
    Neuronpedia file's pinned nodes and supernodes). A graph's subgraphs are named: scoring a
    name again replaces that subgraph. Written back unless ``write=False``."""
    name = name or "pinned"
    if name == SAVED or re.fullmatch(r"top \d+", name):
        raise InvalidGraphError(
            f"subgraph name {name!r} is reserved (--saved and --pin-top N name theirs): choose "
            "another --name"
        )
    loaded = load_for_analysis(store, graph_id)
    graph, source = loaded.graph, loaded.source
    if supernodes and not pinned:
        raise InvalidGraphError("--supernode groups nodes of the --pinned subgraph: pin them too")
    pinned_sets = {name: resolve_pinned(graph, pinned)} if pinned else {}
    groups = {name: _resolve_supernodes(graph, name, supernodes or [], pinned_sets.get(name, []))}
    if saved:
        saved_pins, saved_groups = saved_subgraph(graph)
        if not saved_pins:
            raise InvalidGraphError(
                f"graph {graph_id!r} has no saved subgraph (a Neuronpedia file's "
                "qParams.pinnedIds); pin nodes with --pinned instead"
            )
        pinned_sets[SAVED] = resolve_pinned(graph, saved_pins)
        as_groups = [Supernode(g[0], g[1:]) for g in saved_groups]
        groups[SAVED] = _resolve_supernodes(graph, SAVED, as_groups, pinned_sets[SAVED])
    report, pruning = score_graph(graph, pinned_sets, node_threshold, edge_threshold, pin_top)
    keys = graph.keys()
    # every pinned node is a member (tokens and logits too, as Neuronpedia pins them); the
    # scores count features only (``n_pinned``)
    members = {set_name: [keys[r].encode() for r in rows] for set_name, rows in pinned_sets.items()}
    if write:
        subgraphs = [
            {
                "subgraph_id": subgraph_id(graph_id, row.name),
                "members": members.get(row.name, list(row.pinned)),
                "supernodes": groups.get(row.name, []),
                "props": {
                    "name": row.name,
                    "replacement_score": row.replacement,
                    "completeness_score": row.completeness,
                    "n_pinned": row.n_pinned,
                    "n_folded": row.n_folded,
                    "n_dropped": len(row.dropped),
                    "n_supernodes": len(groups.get(row.name, [])),
                    "dropped": list(row.dropped),
                    "orphaned": list(row.orphaned),
                },
            }
            for row in report.rows
            if row.scope == "subgraph"
        ]
        store.write_scores(
            graph_id,
            _graph_properties(report, pruning, source),
            _node_rows(graph, pruning),
            subgraphs,
        )
    return StoredScores(report, source, write, loaded.fallback_reason)


def prune_stored_graph(
    store: CircuitStore,
    graph_id: str,
    node_threshold: float = DEFAULT_NODE_THRESHOLD,
    edge_threshold: float = DEFAULT_EDGE_THRESHOLD,
    new_graph_id: str | None = None,
    replace: bool = False,
) -> tuple[WriteResult, CircuitGraph]:
    """Store the pruned graph as a new graph linked ``DERIVED_FROM`` its parent."""
    graph = load_for_analysis(store, graph_id).graph
    pruning = prune(AttributionMatrix.from_graph(graph), node_threshold, edge_threshold)
    child = pruned_graph(graph, pruning, new_graph_id)
    result = store.write_derived(
        child,
        {
            graph_id: {
                "operation": "prune",
                "node_threshold": pruning.node_threshold,
                "edge_threshold": pruning.edge_threshold,
            }
        },
        replace=replace,
    )
    return result, child
