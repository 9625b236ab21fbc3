"""Graph scores, circuit-tracer's definitions: influence, pruning, replacement and completeness.

Pure functions of arrays (``attribution_matrix`` → ``influence``/``pruning``/``folding`` →
``replacement``), a graph's score table (``table``), and the store glue (``stored``). The names
below load on first use, so importing a light submodule (``thresholds``) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from circuit_atlas.analysis.scores.attribution_matrix import AttributionMatrix
    from circuit_atlas.analysis.scores.pruning import PruneResult, prune
    from circuit_atlas.analysis.scores.replacement import (
        GraphScores,
        SubgraphScores,
        graph_scores,
        pruned_scores,
        subgraph_scores,
    )

_HOME = {
    "AttributionMatrix": "attribution_matrix",
    "PruneResult": "pruning",
    "prune": "pruning",
    "GraphScores": "replacement",
    "SubgraphScores": "replacement",
    "graph_scores": "replacement",
    "pruned_scores": "replacement",
    "subgraph_scores": "replacement",
}

__all__ = [
    "AttributionMatrix",
    "GraphScores",
    "PruneResult",
    "SubgraphScores",
    "graph_scores",
    "prune",
    "pruned_scores",
    "subgraph_scores",
]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    globals()[name] = value
    return value
