"""Compare many graphs pairwise at one granularity: the table of pairs and the matrices."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import pandas as pd

from circuit_atlas.analysis.compare.identities import graph_items
from circuit_atlas.analysis.compare.metrics import METRICS, MIN_SHARED_FOR_SPEARMAN, compare_pair
from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.graph import CircuitGraph


@dataclass(frozen=True)
class Comparison:
    by: str
    graph_ids: tuple[str, ...]
    pairs: pd.DataFrame  # graph_a, graph_b, shared, size_a, size_b, and one column per metric
    notes: tuple[str, ...] = field(default=())

    def matrix(self, metric: str = "jaccard") -> pd.DataFrame:
        """Symmetric graph × graph matrix of ``metric`` (1 on the diagonal)."""
        if metric not in METRICS:
            raise CircuitAtlasError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
        ids = list(self.graph_ids)
        out = pd.DataFrame(np.eye(len(ids)), index=ids, columns=ids)
        pairs = self.pairs
        for a, b, value in zip(pairs["graph_a"], pairs["graph_b"], pairs[metric]):
            out.loc[a, b] = value
            out.loc[b, a] = value
        return out


def check_same_model(graphs: list[CircuitGraph], allow_mixed: bool) -> list[str]:
    models = sorted({g.metadata.model or "unknown" for g in graphs})
    if len(models) > 1 and not allow_mixed:
        raise CircuitAtlasError(
            f"the graphs come from different models ({', '.join(models)}); their features and "
            "nodes are not comparable — pass --allow-mixed to compare them anyway"
        )
    return models


def compare_graphs(
    graphs: list[CircuitGraph], by: str = "feature", allow_mixed: bool = False
) -> Comparison:
    """Every pair of ``graphs`` compared by identity at granularity ``by``."""
    if len(graphs) < 2:
        raise CircuitAtlasError("comparison needs at least two graphs")
    ids = [g.graph_id for g in graphs]
    if len(set(ids)) != len(ids):
        raise CircuitAtlasError("a graph is listed twice")
    models = check_same_model(graphs, allow_mixed)
    per_graph = [graph_items(g, by) for g in graphs]
    rows = []
    for i, j in combinations(range(len(graphs)), 2):
        result = compare_pair(per_graph[i], per_graph[j])
        rows.append({"graph_a": ids[i], "graph_b": ids[j], **result.as_dict()})
    pairs = pd.DataFrame(rows)
    notes = []
    if len(models) > 1:
        notes.append(f"mixed models compared: {', '.join(models)}")
    transcoders = sorted({g.metadata.transcoder_set or "unknown" for g in graphs})
    if by != "feature" and len(transcoders) > 1:
        notes.append(
            f"different transcoder sets ({', '.join(transcoders)}): node keys do not name the "
            "set, so their features can share a key without being one feature; --by feature "
            "keeps sets apart"
        )
    if any(g.shares is None for g in per_graph):
        notes.append("influence overlap is NaN for graphs without logit probabilities")
    if (pairs["shared_edges"] < MIN_SHARED_FOR_SPEARMAN).any():
        edge_unit = "feature-to-feature edges" if by == "feature" else "edges"
        notes.append(
            f"spearman is NaN for pairs sharing fewer than {MIN_SHARED_FOR_SPEARMAN} {edge_unit}"
        )
    return Comparison(by, tuple(ids), pairs, tuple(notes))
