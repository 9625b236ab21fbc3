"""Upper bounds on path products, stored on every node so that path queries can prune exactly.

A "strongest paths" query ranks token → target paths by the product of |edge weights|. Listing
every path is hopeless on real attribution graphs: every logit hears from most of the graph, so
the number of paths grows about tenfold per extra edge (42k token → logit paths of ≤ 3 edges on a
10k-node graph, 20M of ≤ 6). But an edge ``a → b`` can only lie on a path of ``L`` edges whose
product reaches ``τ`` if

    max over i + j ≤ L − 1 of  prefix[a, i] · |w(a → b)| · suffix[b, j]  ≥  τ,

where ``prefix[n, i]`` is the largest product over walks of at most ``i`` edges from an input
token to ``n`` and ``suffix[n, j]`` the largest over walks of at most ``j`` edges that start at
``n`` (and end anywhere). Both are properties of the graph alone, not of a query, so they are
computed once at write time (``MAX_PATH_EDGES − 1`` max-product sweeps over the edge table) and
stored as the node lists ``prefix_bound`` and ``suffix_bound``; ``queries/strongest_paths.cypher``
then tests every edge it walks against the bound and never expands one that cannot matter.

They are bounds over *walks*, so they stay valid on graphs with cycles, under any extra edge
filter, and for any target; on an acyclic graph they are exact maxima, which is what makes the
pruning sharp. Parallel edges (channels) are separate relationships in the database, so each
counts on its own.
"""

from __future__ import annotations

import numpy as np

from circuit_atlas.graph import CircuitGraph, NodeKind

MAX_PATH_EDGES = 6  # the longest path any library query walks; lists hold 0..MAX_PATH_EDGES-1
PREFIX_PROPERTY = "prefix_bound"
SUFFIX_PROPERTY = "suffix_bound"


class _Groups:
    """Edges grouped by one endpoint, for per-node maxima without a Python loop over edges."""

    def __init__(self, owner: np.ndarray, n: int) -> None:
        self.order = np.argsort(owner, kind="stable")
        ordered = owner[self.order]
        self.starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(owner) else []
        self.owners = ordered[self.starts] if len(owner) else []
        self.n = n

    def max(self, values: np.ndarray) -> np.ndarray:
        """Per node, the largest of its edges' ``values``; 0 for a node with no edge."""
        out = np.zeros(self.n)
        if len(values):
            out[self.owners] = np.maximum.reduceat(values[self.order], self.starts)
        return out


def path_bounds(graph: CircuitGraph) -> tuple[np.ndarray, np.ndarray]:
    """``(prefix, suffix)``, each ``n_nodes × MAX_PATH_EDGES``, non-decreasing along a row.

    ``prefix[n, i]``: max product of |w| over walks of ≤ i edges from an embedding node to ``n``
    (1 at ``i = 0`` for embedding nodes, 0 where no such walk exists). ``suffix[n, j]``: max
    product over walks of ≤ j edges starting at ``n`` (1 at ``j = 0``). Each column extends the
    previous one by one edge: the best walk of ≤ i edges is the best of ≤ i − 1, or the best of
    ≤ i − 1 into (out of) a neighbour plus the edge.
    """
    n = graph.n_nodes
    source = graph.edges["source"].to_numpy(dtype=np.int64)
    target = graph.edges["target"].to_numpy(dtype=np.int64)
    weight = np.abs(graph.edges["weight"].to_numpy(dtype=np.float64))
    into, out_of = _Groups(target, n), _Groups(source, n)
    prefix = np.zeros((n, MAX_PATH_EDGES))
    suffix = np.zeros((n, MAX_PATH_EDGES))
    prefix[:, 0] = (graph.nodes["kind"] == NodeKind.EMBEDDING.value).to_numpy(dtype=np.float64)
    suffix[:, 0] = 1.0
    for i in range(1, MAX_PATH_EDGES):
        prefix[:, i] = np.maximum(prefix[:, i - 1], into.max(prefix[source, i - 1] * weight))
        suffix[:, i] = np.maximum(suffix[:, i - 1], out_of.max(weight * suffix[target, i - 1]))
    return prefix, suffix
