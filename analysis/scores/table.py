"""Scores of one graph — full, pruned and pinned subgraphs — as one report (no database).

This is what ``circuit-atlas score`` prints and what is written back to the store. It resolves
pinned nodes the way users name them, runs the pure functions of :mod:`.scores`, and keeps every
caveat next to the number it qualifies (features dropped for lack of an error node, pinned
features orphaned by those drops, a graph that its exporter had already pruned).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from circuit_atlas.analysis.scores.attribution_matrix import ERROR, FEATURE, AttributionMatrix
from circuit_atlas.analysis.scores.pruning import (
    DEFAULT_EDGE_THRESHOLD,
    DEFAULT_NODE_THRESHOLD,
    PruneResult,
    prune,
)
from circuit_atlas.analysis.scores.replacement import (
    SubgraphScores,
    graph_scores,
    pruned_scores,
    subgraph_scores,
)
from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.graph import CircuitGraph, NodeKey


@dataclass(frozen=True)
class ScoreRow:
    """One line of the score table."""

    scope: str  # "full" | "pruned" | "subgraph"
    name: str
    replacement: float
    completeness: float
    n_nodes: int
    n_features: int
    n_pinned: int | None = None
    n_folded: int = 0
    dropped: tuple[str, ...] = ()  # node keys of features dropped (no error node to fold into)
    orphaned: tuple[str, ...] = ()  # node keys of kept features left without inputs
    pinned: tuple[str, ...] = ()  # node keys of the pinned features (subgraphs)


@dataclass(frozen=True)
class ScoreReport:
    graph_id: str
    node_threshold: float
    edge_threshold: float
    pruned_by_exporter: bool  # the stored graph is itself an exporter's pruned graph
    rows: tuple[ScoreRow, ...]
    notes: tuple[str, ...] = field(default=())

    def row(self, scope: str, name: str | None = None) -> ScoreRow:
        for row in self.rows:
            if row.scope == scope and (name is None or row.name == name):
                return row
        raise KeyError((scope, name))

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "scope": r.scope,
                    "name": r.name,
                    "replacement": r.replacement,
                    "completeness": r.completeness,
                    "nodes": r.n_nodes,
                    "features": r.n_features,
                    "pinned": r.n_pinned,
                    "folded": r.n_folded,
                    "dropped": len(r.dropped),
                }
                for r in self.rows
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def subgraph_id(graph_id: str, name: str) -> str:
    """A stable id for a graph's subgraph of this name: a name is one subgraph per graph, so
    scoring a name again (other pins, other supernodes) replaces it, and many named subgraphs
    live side by side."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{graph_id}/subgraph-{digest}"


def resolve_pinned(graph: CircuitGraph, specs: list[str]) -> list[int]:
    """Rows for pinned-node specs: a node key (``feature:3:5:123:``), or the id the source tool
    used (Neuronpedia ``node_id``), or the display id. Ambiguous or unknown specs are errors.
    """
    keys = graph.keys()
    by_key = {k.encode(): i for i, k in enumerate(keys)}
    by_display: dict[str, list[int]] = {}
    by_source: dict[str, list[int]] = {}
    for i, (key, source) in enumerate(zip(keys, graph.nodes["source_id"])):
        by_display.setdefault(key.display_id(), []).append(i)
        if source is not None:
            by_source.setdefault(str(source), []).append(i)
    rows: list[int] = []
    for spec in specs:
        if spec in by_key:
            rows.append(by_key[spec])
            continue
        matches = sorted(set(by_source.get(spec, []) + by_display.get(spec, [])))
        if not matches:
            raise InvalidGraphError(
                f"pinned node {spec!r} is not in graph {graph.graph_id!r} (give a node key such "
                "as 'feature:LAYER:POS:INDEX:', the source tool's node id, or a display id)"
            )
        if len(matches) > 1:
            options = ", ".join(keys[i].encode() for i in matches)
            raise InvalidGraphError(
                f"pinned node {spec!r} names {len(matches)} nodes of graph {graph.graph_id!r} "
                f"({options}); pin one by its node key"
            )
        rows.append(matches[0])
    return rows


def top_features(matrix: AttributionMatrix, node_influence: np.ndarray, count: int) -> list[int]:
    """The ``count`` features of highest influence (ties broken by node order)."""
    features = np.flatnonzero(matrix.mask(FEATURE))
    ranked = features[np.argsort(-node_influence[features], kind="stable")]
    return ranked[:count].tolist()


def _row(
    scope: str, name: str, result: SubgraphScores, keys: list[NodeKey], pinned: list[int]
) -> ScoreRow:
    fold = result.fold
    return ScoreRow(
        scope=scope,
        name=name,
        replacement=result.scores.replacement,
        completeness=result.scores.completeness,
        n_nodes=fold.matrix.n,
        n_features=int(fold.matrix.mask(FEATURE).sum()),
        n_pinned=result.n_pinned_features,
        n_folded=int(fold.folded.size),
        dropped=tuple(keys[i].encode() for i in fold.dropped),
        orphaned=tuple(keys[i].encode() for i in fold.orphaned),
        pinned=tuple(sorted(keys[i].encode() for i in pinned)),
    )


def score_graph(
    graph: CircuitGraph,
    pinned_sets: dict[str, list[int]] | None = None,
    node_threshold: float = DEFAULT_NODE_THRESHOLD,
    edge_threshold: float = DEFAULT_EDGE_THRESHOLD,
    pin_top: list[int] | None = None,
) -> tuple[ScoreReport, PruneResult]:
    """Full, pruned and subgraph scores; ``pinned_sets`` maps a name to pinned node rows, and
    each ``pin_top`` count adds the subgraph ``"top N"`` of the N most influential features."""
    matrix = AttributionMatrix.from_graph(graph)
    keys = graph.keys()
    full = graph_scores(matrix)
    pruning = prune(matrix, node_threshold, edge_threshold)
    pinned_sets = dict(pinned_sets or {})
    for count in pin_top or []:
        if count < 1:
            raise ValueError(f"--pin-top needs a positive count, got {count}")
        pinned_sets[f"top {count}"] = top_features(matrix, pruning.node_influence, count)
    rows = [
        ScoreRow(
            "full",
            "full",
            full.replacement,
            full.completeness,
            matrix.n,
            int(matrix.mask(FEATURE).sum()),
        ),
        _row(
            "pruned",
            f"pruned {node_threshold:g}/{edge_threshold:g}",
            pruned_scores(matrix, pruning),
            keys,
            [],
        ),
    ]
    notes = []
    for name, pinned_rows in pinned_sets.items():
        mask = np.zeros(matrix.n, dtype=bool)
        mask[pinned_rows] = True
        non_features = [keys[i].display_id() for i in pinned_rows if matrix.kind[i] != FEATURE]
        if non_features:
            notes.append(
                f"{name}: pinned non-feature node(s) {', '.join(non_features)} are always part "
                "of a subgraph; only features are folded"
            )
        features = [i for i in pinned_rows if matrix.kind[i] == FEATURE]
        rows.append(_row("subgraph", name, subgraph_scores(matrix, mask), keys, features))
    pruned_by_exporter = graph.metadata.node_threshold is not None
    if pruned_by_exporter:
        notes.insert(
            0,
            f"the stored graph was already pruned by its exporter (node threshold "
            f"{graph.metadata.node_threshold:g}); 'full' scores that pruned graph",
        )
    if (note := pruned_node_count_note(matrix, pruning, rows[1].n_nodes)) is not None:
        notes.append(note)
    for row in rows:
        if row.dropped:
            notes.append(
                f"{row.name}: {len(row.dropped)} feature(s) had no error node at their "
                "(layer, position) to fold into and were dropped (Neuronpedia's rule)"
            )
        if row.orphaned:
            notes.append(
                f"{row.name}: {len(row.orphaned)} kept feature(s) lost every input to those drops"
            )
    report = ScoreReport(
        graph_id=graph.graph_id,
        node_threshold=pruning.node_threshold,
        edge_threshold=pruning.edge_threshold,
        pruned_by_exporter=pruned_by_exporter,
        rows=tuple(rows),
        notes=tuple(notes),
    )
    return report, pruning


def pruned_node_count_note(
    matrix: AttributionMatrix, pruning: PruneResult, scored_nodes: int
) -> str | None:
    """Why the pruned row counts more nodes than ``circuit-atlas prune`` stores, or ``None``.

    The score folds each pruned feature into the error node at its (layer, position), so the
    scored graph keeps every error node (and token and logit); the stored pruned graph keeps
    only the nodes whose own influence passes the node threshold, error nodes included.
    """
    kept = int(pruning.node_mask.sum())
    if kept == scored_nodes:
        return None
    errors = matrix.mask(ERROR)
    kept_errors = int((pruning.node_mask & errors).sum())
    kept_features = int((pruning.node_mask & matrix.mask(FEATURE)).sum())
    return (
        f"the pruned row scores {scored_nodes} nodes: the {kept_features} "
        f"kept features plus every token, logit and error node, because pruned features are "
        f"folded into the error nodes; `circuit-atlas prune` stores the {kept} nodes that pass "
        f"the thresholds themselves ({kept_errors} of the {int(errors.sum())} error nodes)"
    )
