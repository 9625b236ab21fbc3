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

``suffix`` bounds walks that end *anywhere*. On a small, dense, cyclic graph (an ROI quotient
graph, where almost every ROI feeds every other) that is loose for a path that must end at one
logit: strong edges between ROIs inflate every node's suffix, and roi_paths extended ~250k partial
trails to find 10 paths. So on small graphs (``nodes × logits × MAX_PATH_EDGES`` within
``MAX_TARGET_BOUND_VALUES``: ROI quotients, small pruned graphs), every node also stores
``target_suffix_bound``: per logit ``t`` (its
``target_index``), the best product over walks of ≤ j edges from the node *to t*, flattened as
``[t · MAX_PATH_EDGES + j]``. Queries prefer it and fall back to ``suffix_bound`` where it is
absent (a target that is not a logit, a large graph, a graph stored before it existed).
"""

from __future__ import annotations

import numpy as np

from circuit_atlas.graph import CircuitGraph, NodeKind

MAX_PATH_EDGES = 6  # the longest path any library query walks; lists hold 0..MAX_PATH_EDGES-1
PREFIX_PROPERTY = "prefix_bound"
SUFFIX_PROPERTY = "suffix_bound"
TARGET_SUFFIX_PROPERTY = "target_suffix_bound"
TARGET_INDEX_PROPERTY = "target_index"
# Per-target bounds cost MAX_PATH_EDGES floats per logit on every node (and a sweep over the
# edges per logit): kept to small graphs, where they are what makes path queries prune (an ROI
# quotient of 63 nodes and 10 logits stores 3,780 values). On an ordinary attribution graph,
# sparse and acyclic, the bound to anywhere already prunes well, and the extra list on every
# node would slow every ingest.
MAX_BOUND_TARGETS = 32
MAX_TARGET_BOUND_VALUES = 20_000
TARGET_BOUND_BUDGET = 2_000_000  # logits × edges: the sweeps' cost


class _Groups:
    """Edges grouped by one endpoint, for per-node maxima without a Python loop over edges."""

    def __init__(self, owner: np.ndarray, n: int) -> None:
        self.order = np.argsort(owner, kind="stable")
        ordered = owner[self.order]
        self.starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]]) if len(owner) else []
        self.owners = ordered[self.starts] if len(owner) else []
        self.n = n

    def max(self, values: np.ndarray) -> np.ndarray:
        """Per node, the largest of its edges' ``values`` (one per edge, or one row per edge);
        0 for a node with no edge."""
        out = np.zeros((self.n, *values.shape[1:]))
        if len(values):
            out[self.owners] = np.maximum.reduceat(values[self.order], self.starts, axis=0)
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


def target_suffix_bounds(graph: CircuitGraph) -> tuple[np.ndarray, np.ndarray] | None:
    """``(targets, bounds)`` where it is cheap (see the module docstring), else None.

    ``targets``: the logit nodes' indices, in node order (a logit's ``target_index`` is its
    position here). ``bounds``: ``n_nodes × (len(targets) · MAX_PATH_EDGES)``; entry
    ``[n, t · MAX_PATH_EDGES + j]`` is the max product of |w| over walks of ≤ j edges from ``n``
    to ``targets[t]`` (1 at j = 0 for the target itself, 0 where no such walk exists).
    """
    targets = np.flatnonzero((graph.nodes["kind"] == NodeKind.LOGIT.value).to_numpy())
    n_targets = len(targets)
    if not n_targets or n_targets > MAX_BOUND_TARGETS:
        return None
    if graph.n_nodes * n_targets * MAX_PATH_EDGES > MAX_TARGET_BOUND_VALUES:
        return None
    if n_targets * graph.n_edges > TARGET_BOUND_BUDGET:
        return None
    n = graph.n_nodes
    source = graph.edges["source"].to_numpy(dtype=np.int64)
    target = graph.edges["target"].to_numpy(dtype=np.int64)
    weight = np.abs(graph.edges["weight"].to_numpy(dtype=np.float64))[:, None]
    out_of = _Groups(source, n)
    bounds = np.zeros((n, n_targets, MAX_PATH_EDGES))
    bounds[targets, np.arange(n_targets), 0] = 1.0
    for j in range(1, MAX_PATH_EDGES):
        through_an_edge = out_of.max(weight * bounds[target, :, j - 1])
        bounds[:, :, j] = np.maximum(bounds[:, :, j - 1], through_an_edge)
    return targets, bounds.reshape(n, n_targets * MAX_PATH_EDGES)
