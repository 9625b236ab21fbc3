"""Null models: random graphs that keep some structure of an observed graph and lose the rest.

A motif is "enriched" only relative to what a null model keeps. Attribution graphs are layered:
edges run from embeddings through features to logits, and a few nodes (embeddings, logits,
error nodes) have huge degrees. Each null model here keeps more of that, so a motif that
survives all four is not explained by edge density, degrees, or the layer/position layout:

* ``erdos-renyi``: only the number of nodes and edges.
* ``degree``: every node's in- and out-degree (Maslov & Sneppen 2002, directed double-edge
  swaps ``(a→b), (c→d) → (a→d), (c→b)``).
* ``layer-position``: the number of edges between every ordered pair of node classes, a class
  being ``(kind, layer, pos)``; within a class pair the edges are placed uniformly.
* ``degree-layer-position``: degree swaps only between edges whose targets share a class, which
  keeps the degrees and the class-to-class edge counts together.

Every model maps ``(M, node_classes, rng)`` to a new simple digraph ``M'`` (``M[source,
target]``, 0/1 int64 CSR, no self-loops or duplicate edges) with as many edges as ``M``. Rewired
graphs may have cycles and reciprocal pairs; the census handles both.

The swaps are vectorised (Python loops run over rounds, never over edges): in each round the
edges are paired at random and every pair proposes its swap at once. A proposal is refused if
it would make a self-loop or an edge that exists, and also if any of the four node pairs it
reads or writes (``a→b, c→d, a→d, c→b``) is read or written by another proposal of the round.
That last rule makes a round exactly reversible — from the rewired graph the same pairing
proposes the inverse swaps and accepts exactly those — so the chain is symmetric and its
stationary distribution is uniform over the simple digraphs it can reach
(``tests/unit/test_motifs.py`` checks this against an enumeration). Refusing only proposals
that collide on the edges they *make* is not reversible: on the air analogy graph that chain
drifts on for hundreds of rounds to about 15% fewer feed-forward loops than the uniform one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from circuit_atlas.analysis.motifs.census import as_binary
from circuit_atlas.registrar import registrar

if TYPE_CHECKING:
    from circuit_atlas.graph import CircuitGraph

NullModel = Callable[[sp.csr_matrix, np.ndarray, np.random.Generator], sp.csr_matrix]
NULL_MODELS: dict[str, NullModel] = {}
register = registrar(NULL_MODELS)

# How many swap rounds: enough that the swaps made average SWAPS_PER_EDGE per edge. In an
# attribution graph most proposals are refused (hub targets such as logits already receive an
# edge from nearly every node): about 9 in 10 under "degree" and 49 in 50 under
# "degree-layer-position", so a fixed 10 rounds would move a typical edge once, or 0.3 times.
# The rate is measured by a pilot of PILOT_ROUNDS rounds on an independent generator, and the
# sample is then drawn with that many rounds fixed in advance. Stopping the sampling chain itself
# once it has made enough swaps (as networkx's double_edge_swap does) biases the sample towards
# graphs in which swaps are refused: on the 34-graph example of tests/unit/test_motifs.py,
# stopping after 2 swaps per edge is rejected as uniform at p < 1e-4; planned rounds give p > 0.2.
SWAPS_PER_EDGE = 5.0
PILOT_ROUNDS = 10
MIN_ROUNDS = 10
MAX_ROUNDS = 1_000  # a bound for graphs where hardly any swap is possible
MAX_RESAMPLES = 10_000  # rejection rounds of layer-position; each pending edge succeeds w.p. ≥ ½


def node_classes(graph: CircuitGraph) -> np.ndarray:
    """Class id of every node: equal ``(kind, layer, pos)``, a missing field being a value of
    its own (an MLP node has no position; it shares a class with other MLP nodes of its layer)."""
    fields = ["kind", "layer", "pos"]
    grouped = graph.nodes[fields].groupby(fields, dropna=False, sort=True)
    return grouped.ngroup().to_numpy(dtype=np.int64)


def checked_classes(n: int, node_classes: np.ndarray) -> np.ndarray:
    """``node_classes`` as int64, refused unless it holds one integer per node (``n``)."""
    classes = np.asarray(node_classes)
    if classes.shape != (n,) or not np.issubdtype(classes.dtype, np.integer):
        raise ValueError(
            f"node_classes must be {n} integers (one per node), "
            f"not an array of shape {classes.shape} and dtype {classes.dtype}"
        )
    return classes.astype(np.int64)


def edge_list(adjacency: sp.spmatrix | sp.sparray) -> tuple[np.ndarray, np.ndarray]:
    """Sources and targets (int64) of the edges of a binarised ``adjacency``."""
    coo = as_binary(adjacency).tocoo()
    return coo.row.astype(np.int64), coo.col.astype(np.int64)


def from_edge_list(source: np.ndarray, target: np.ndarray, n: int) -> sp.csr_matrix:
    """The 0/1 int64 CSR matrix of a list of distinct edges."""
    ones = np.ones(len(source), dtype=np.int64)
    matrix = sp.csr_matrix((ones, (source, target)), shape=(n, n), dtype=np.int64)
    matrix.sort_indices()
    return matrix


def _in_sorted(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Whether each of ``keys`` is in the sorted array ``sorted_keys``."""
    at = np.searchsorted(sorted_keys, keys)
    found = np.zeros(len(keys), dtype=bool)
    inside = at < len(sorted_keys)
    found[inside] = sorted_keys[at[inside]] == keys[inside]
    return found


def _repeated(keys: np.ndarray, bound: int) -> np.ndarray:
    """Whether each of ``keys`` (ints in ``[0, bound)``) occurs more than once in ``keys``.

    Sorts ``key · 2^k + index`` (one ``np.sort``, about twice as fast as ``argsort``) when that
    fits in int64, which it does for every graph of up to ~10⁶ nodes.
    """
    shift = max(int(len(keys)).bit_length(), 1)
    if bound.bit_length() + shift < 63:
        packed = np.sort((keys << shift) | np.arange(len(keys), dtype=np.int64))
        ordered, order = packed >> shift, packed & ((1 << shift) - 1)
    else:
        order = np.argsort(keys)
        ordered = keys[order]
    equal = ordered[1:] == ordered[:-1]
    repeated = np.zeros(len(keys), dtype=bool)
    repeated[1:] |= equal
    repeated[:-1] |= equal
    result = np.empty(len(keys), dtype=bool)
    result[order] = repeated
    return result


class Pairing:
    """Random pairings of edges within groups (a group: edges allowed to swap with each other).

    Sorted by group, the edges of a group sit at consecutive positions; a pairing puts a random
    permutation of each group into its positions and pairs positions ``2k, 2k+1`` of the group,
    an odd one out of each group staying unpaired. The positions depend only on the group sizes,
    so they are computed once; each round only draws the permutation.
    """

    def __init__(self, groups: np.ndarray) -> None:
        self.groups = np.unique(groups, return_inverse=True)[1].ravel().astype(np.float64)
        self.single = bool(len(groups) == 0 or self.groups.max() == 0)
        ordered = np.sort(self.groups)
        positions = np.arange(len(groups))
        starts = np.r_[True, ordered[1:] != ordered[:-1]]
        rank = positions - np.maximum.accumulate(np.where(starts, positions, 0))
        has_next = np.r_[ordered[1:] == ordered[:-1], False]
        self.first = np.flatnonzero((rank % 2 == 0) & has_next)
        paired = np.zeros(len(groups), dtype=bool)
        paired[self.first] = paired[self.first + 1] = True
        self.unpaired = np.flatnonzero(~paired)

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(first, second, unpaired) edge indices of a uniformly random pairing."""
        if self.single:
            order = rng.permutation(len(self.groups))
        else:  # by group, uniformly random within a group
            order = np.argsort(self.groups + rng.random(len(self.groups)))
        return order[self.first], order[self.first + 1], order[self.unpaired]


def swap_round(
    source: np.ndarray, target: np.ndarray, pairing: Pairing, n: int, rng: np.random.Generator
) -> int:
    """One round of double-edge swaps between paired edges, in place on ``target``; returns
    the number of swaps made.

    ``(a→b), (c→d)`` becomes ``(a→d), (c→b)``: every node keeps its in- and out-degree, and
    when a group is the target's class the class pair of each edge is kept as well. A proposal
    is refused when one of its four node pairs is also a node pair of another proposal or of an
    unpaired edge (this covers "the edge exists" and "another swap makes it too"), or when it
    would make a self-loop or nothing new.
    """
    first, second, unpaired = pairing.draw(rng)
    a, b = source[first], target[first]
    c, d = source[second], target[second]
    keys = np.concatenate([a * n + b, c * n + d, a * n + d, c * n + b])
    stays = source[unpaired] * n + target[unpaired]
    shared = _repeated(np.concatenate([keys, stays]), n * n)[: len(keys)]
    ok = ~shared.reshape(4, -1).any(axis=0) & (a != d) & (c != b) & (a != c) & (b != d)
    target[first[ok]] = d[ok]
    target[second[ok]] = b[ok]
    return int(ok.sum())


def swap_targets(
    source: np.ndarray,
    target: np.ndarray,
    groups: np.ndarray,
    n: int,
    rng: np.random.Generator,
    n_rounds: int,
) -> tuple[np.ndarray, int]:
    """``n_rounds`` rounds of swaps between edges of equal ``groups`` (one group per edge; it
    stays valid, since a swap only exchanges the targets of two edges of one group).
    Returns (new targets, swaps made)."""
    target = target.copy()
    pairing = Pairing(groups)
    swaps = sum(swap_round(source, target, pairing, n, rng) for _ in range(n_rounds))
    return target, swaps


def planned_rounds(
    source: np.ndarray,
    target: np.ndarray,
    groups: np.ndarray,
    n: int,
    rng: np.random.Generator,
    swaps_per_edge: float = SWAPS_PER_EDGE,
) -> int:
    """Rounds that make about ``swaps_per_edge`` swaps per edge, from the rate of a pilot run on
    a generator seeded from ``rng`` (so the sample's own path cannot influence its length)."""
    if len(target) < 2:
        return 0
    pilot = np.random.default_rng(int(rng.integers(2**63)))
    swaps = swap_targets(source, target, groups, n, pilot, PILOT_ROUNDS)[1]
    per_round = 2 * max(swaps, 1) / (PILOT_ROUNDS * len(target))
    return int(np.clip(math.ceil(swaps_per_edge / per_round), MIN_ROUNDS, MAX_ROUNDS))


def rewire(
    adjacency: sp.csr_matrix,
    groups_of_nodes: np.ndarray,
    rng: np.random.Generator,
    swaps_per_edge: float = SWAPS_PER_EDGE,
    n_rounds: int | None = None,
) -> sp.csr_matrix:
    """Swaps between edges whose targets have equal ``groups_of_nodes``; ``n_rounds`` rounds,
    or (None) as many as :func:`planned_rounds` plans."""
    source, target = edge_list(adjacency)
    n = adjacency.shape[0]
    groups = checked_classes(n, groups_of_nodes)[target]
    if n_rounds is None:
        n_rounds = planned_rounds(source, target, groups, n, rng, swaps_per_edge)
    return from_edge_list(source, swap_targets(source, target, groups, n, rng, n_rounds)[0], n)


@register("erdos-renyi")
def erdos_renyi(
    adjacency: sp.csr_matrix, node_classes: np.ndarray, rng: np.random.Generator
) -> sp.csr_matrix:
    """As many edges as ``adjacency``, drawn uniformly from the ``n(n−1)`` ordered pairs of
    distinct nodes without repeats (``node_classes`` is unused)."""
    n = adjacency.shape[0]
    n_edges = len(edge_list(adjacency)[0])
    if n_edges == 0:
        return from_edge_list(np.zeros(0, np.int64), np.zeros(0, np.int64), n)
    cells = rng.choice(n * (n - 1), size=n_edges, replace=False).astype(np.int64)
    source, column = np.divmod(cells, n - 1)
    return from_edge_list(source, column + (column >= source), n)


@register("degree")
def degree_preserving(
    adjacency: sp.csr_matrix,
    node_classes: np.ndarray,
    rng: np.random.Generator,
    swaps_per_edge: float = SWAPS_PER_EDGE,
    n_rounds: int | None = None,
) -> sp.csr_matrix:
    """Maslov–Sneppen rewiring: every node's in- and out-degree exactly as in ``adjacency``."""
    one_group = np.zeros(adjacency.shape[0], dtype=np.int64)
    return rewire(adjacency, one_group, rng, swaps_per_edge, n_rounds)


@register("degree-layer-position")
def degree_layer_position(
    adjacency: sp.csr_matrix,
    node_classes: np.ndarray,
    rng: np.random.Generator,
    swaps_per_edge: float = SWAPS_PER_EDGE,
    n_rounds: int | None = None,
) -> sp.csr_matrix:
    """Swaps only between edges into the same class: degrees and class-pair counts both kept."""
    return rewire(adjacency, node_classes, rng, swaps_per_edge, n_rounds)


class _Classes:
    """The members of every class in one array: class ``c`` is
    ``members[start[c] : start[c] + size[c]]``."""

    def __init__(self, node_classes: np.ndarray) -> None:
        self.of_node = np.unique(node_classes, return_inverse=True)[1].ravel().astype(np.int64)
        self.members = np.argsort(self.of_node, kind="stable").astype(np.int64)
        self.size = np.bincount(self.of_node).astype(np.int64)
        self.start = np.cumsum(self.size) - self.size


def _cell_nodes(
    classes: _Classes, block_source: np.ndarray, block_target: np.ndarray, cell: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Source and target node of ``cell`` of the blocks ``(block_source → block_target)``.

    A block between two classes has ``|S|·|T|`` cells (row-major); a block within one class
    has ``|S|·(|S|−1)``, the diagonal (self-loops) skipped.
    """
    same = block_source == block_target
    width = classes.size[block_target] - same
    row, column = np.divmod(cell, width)
    column = column + (same & (column >= row))
    return (
        classes.members[classes.start[block_source] + row],
        classes.members[classes.start[block_target] + column],
    )


def _fill_dense_blocks(
    cells: np.ndarray, counts: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A uniform ``counts[b]``-subset of ``range(cells[b])`` for every block ``b``, by ranking
    random keys over all cells at once (used where blocks are at least half full, so the cells
    enumerated are at most twice the edges). Returns (block index, cell) of the chosen cells."""
    offsets = np.cumsum(cells) - cells
    block = np.repeat(np.arange(len(cells)), cells)
    cell = np.arange(int(cells.sum()), dtype=np.int64) - offsets[block]
    order = np.lexsort((rng.random(len(cell)), block))
    keep = cell < 0  # all False
    keep[order] = (np.arange(len(order)) - offsets[block[order]]) < counts[block[order]]
    return block[keep], cell[keep]


def _fill_sparse_blocks(
    classes: _Classes,
    block_source: np.ndarray,
    block_target: np.ndarray,
    cells: np.ndarray,
    n: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """One uniformly random cell per entry of ``cells`` (one entry per edge), resampling only
    the repeats; blocks at most half full make each resample succeed with probability ≥ ½."""
    chosen = np.zeros(0, dtype=np.int64)
    pending = np.arange(len(cells))
    for _ in range(MAX_RESAMPLES):
        cell = rng.integers(0, cells[pending])
        source, target = _cell_nodes(classes, block_source[pending], block_target[pending], cell)
        keys = source * n + target
        _, first = np.unique(keys, return_index=True)
        fresh = np.zeros(len(keys), dtype=bool)
        fresh[first] = True
        fresh &= ~_in_sorted(chosen, keys)
        chosen = np.sort(np.concatenate([chosen, keys[fresh]]))
        pending = pending[~fresh]
        if len(pending) == 0:
            break
    if len(pending):
        raise RuntimeError("layer-position null model: resampling did not converge")
    return np.divmod(chosen, n)


@register("layer-position")
def layer_position(
    adjacency: sp.csr_matrix, node_classes: np.ndarray, rng: np.random.Generator
) -> sp.csr_matrix:
    """Each edge's source and target replaced by uniformly random nodes of their classes: the
    edge count of every ordered class pair is kept, each block of edges placed uniformly."""
    source, target = edge_list(adjacency)
    n = adjacency.shape[0]
    classes = _Classes(checked_classes(n, node_classes))
    n_classes = len(classes.size)
    pair = classes.of_node[source] * n_classes + classes.of_node[target]
    blocks, edge_block, counts = np.unique(pair, return_inverse=True, return_counts=True)
    block_source, block_target = np.divmod(blocks, n_classes)
    cells = classes.size[block_source] * (
        classes.size[block_target] - (block_source == block_target)
    )
    dense = 2 * counts >= cells

    dense_ids = np.flatnonzero(dense)
    block, cell = _fill_dense_blocks(cells[dense_ids], counts[dense_ids], rng)
    block = dense_ids[block]
    dense_source, dense_target = _cell_nodes(
        classes, block_source[block], block_target[block], cell
    )

    sparse_edges = np.flatnonzero(~dense[edge_block.ravel()])
    sparse_block = edge_block.ravel()[sparse_edges]
    sparse_source, sparse_target = _fill_sparse_blocks(
        classes, block_source[sparse_block], block_target[sparse_block], cells[sparse_block], n, rng
    )
    return from_edge_list(
        np.concatenate([dense_source, sparse_source]),
        np.concatenate([dense_target, sparse_target]),
        n,
    )
