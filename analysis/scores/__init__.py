"""Graph scores, circuit-tracer's definitions: influence, pruning, replacement and completeness.

Pure functions of arrays (``attribution_matrix`` → ``influence``/``pruning``/``folding`` →
``replacement``), a graph's score table (``table``), and the store glue (``stored``). The names
below load on first use, so importing a light submodule (``thresholds``) stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuit_atlas.lazy import lazy_exports

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
    "AttributionMatrix": "circuit_atlas.analysis.scores.attribution_matrix",
    "PruneResult": "circuit_atlas.analysis.scores.pruning",
    "prune": "circuit_atlas.analysis.scores.pruning",
    "GraphScores": "circuit_atlas.analysis.scores.replacement",
    "SubgraphScores": "circuit_atlas.analysis.scores.replacement",
    "graph_scores": "circuit_atlas.analysis.scores.replacement",
    "pruned_scores": "circuit_atlas.analysis.scores.replacement",
    "subgraph_scores": "circuit_atlas.analysis.scores.replacement",
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


__getattr__, __dir__ = lazy_exports(__name__, globals(), _HOME)
