"""Induced three-node motif counts of a binary directed graph, by sparse matrix algebra.

Why these five motifs: attribution graphs are DAGs, so of the 16 triad classes only the acyclic
ones with one-way edges occur in them — the feed-forward loop (030T), the chain (021C), fan-out
(021D) and fan-in (021U). The cycle (030C) is counted too because null models rewire edges and
can create cycles and reciprocal pairs; the formulas below stay exact on any simple digraph.

With ``M`` the 0/1 matrix ``M[source, target]`` (no self-loops), ``R = M ∘ Mᵀ`` the reciprocal
pairs, ``D = M − R`` the one-way edges and ``U = M ∨ Mᵀ`` the connected pairs:

* ``feed_forward_loop`` (030T) ``= Σ D ∘ (D D)``: a→b→c with a→c, every pair one-way.
* ``chain`` (021C) ``= Σ D D − Σ (D D) ∘ U``: 2-paths a→b→c whose ends are unconnected.
* ``fan_out`` (021D) ``= [Σ DᵀD − tr DᵀD − Σ (DᵀD) ∘ U] / 2``: a←b→c, a and c unconnected.
* ``fan_in`` (021U) ``= [Σ DDᵀ − tr DDᵀ − Σ (DDᵀ) ∘ U] / 2``: a→b←c, a and c unconnected.
* ``cycle`` (030C) ``= tr D³ / 3``.

Triads touching a reciprocal pair are in none of the five classes, which is why only ``D``
enters the products while ``U`` decides "unconnected". ``D D`` has a zero diagonal (a one-way
edge has no way back), so no trace term is needed for the chain.

How it is computed. Sums of a product come from degrees (``Σ D D = Σ_b in(b)·out(b)``,
``Σ DᵀD = Σ_b out(b)²``, ``tr DᵀD = tr DDᵀ = nnz D``). The masked sums split along
``U = D + Dᵀ + R`` into ones that need a single large product, ``D D``::

    Σ (D D) ∘ D  = FFL              Σ (D D) ∘ Dᵀ = tr D³ = 3·cycle
    Σ (DᵀD) ∘ D  = Σ (DᵀD) ∘ Dᵀ = Σ (DDᵀ) ∘ D = Σ (DDᵀ) ∘ Dᵀ = FFL
    Σ (D D) ∘ R  = Σ (D R) ∘ Dᵀ     Σ (DᵀD) ∘ R = Σ (D R) ∘ D     Σ (DDᵀ) ∘ R = Σ (R D) ∘ D

(the last three by moving a factor across the Frobenius product; ``R`` is symmetric and empty in
a DAG, so its products cost nothing there). Each masked sum multiplies row blocks sized so that
no block's product holds more than ``BLOCK_PRODUCTS`` entries. Nothing is ever dense, so a graph
of 50k nodes and a million edges is counted in bounded memory, with int64 arithmetic throughout;
``tests/unit/test_motifs.py`` checks every count against ``networkx.triadic_census``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from circuit_atlas.graph import CircuitGraph

MOTIFS = ("feed_forward_loop", "chain", "fan_out", "fan_in", "cycle")
TRIAD_CODES = {  # the names networkx.triadic_census (Batagelj–Mrvar) gives these classes
    "feed_forward_loop": "030T",
    "chain": "021C",
    "fan_out": "021D",
    "fan_in": "021U",
    "cycle": "030C",
}
BLOCK_PRODUCTS = 4_000_000  # most scalar products one row block of a masked product may hold


def binary_edges(graph: CircuitGraph, min_abs_weight: float = 0.0) -> sp.csr_matrix:
    """``M[source, target] = 1`` for every edge of ``graph`` (int64 CSR).

    ``graph.adjacency()`` is ``A[target, source]`` with parallel channel edges summed, so ``M``
    is its transpose, binarised: one edge per ordered pair however many channels it has. With
    ``min_abs_weight > 0`` a pair is kept only when the net weight ``|Σ_channels w| >
    min_abs_weight``; with 0 every stored edge counts, zero weights included. Self-loops are
    dropped (validated graphs have none).
    """
    transposed = graph.adjacency().T.tocsr()
    transposed.sum_duplicates()
    if min_abs_weight > 0:
        keep = np.abs(transposed.data) > min_abs_weight
    else:
        keep = np.ones(transposed.nnz, dtype=bool)
    matrix = sp.csr_matrix(
        (keep.astype(np.int64), transposed.indices, transposed.indptr), shape=transposed.shape
    )
    matrix.setdiag(0)
    matrix.eliminate_zeros()
    return matrix


def as_binary(adjacency: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """``adjacency`` as a 0/1 int64 CSR matrix without self-loops (any nonzero is an edge)."""
    matrix = sp.csr_matrix(adjacency, copy=True)  # its own dtype: int64 would zero 0.5
    if matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"an adjacency matrix must be square, not {matrix.shape}")
    matrix.sum_duplicates()
    matrix = sp.csr_matrix(
        ((matrix.data != 0).astype(np.int64), matrix.indices, matrix.indptr), shape=matrix.shape
    )
    matrix.setdiag(0)
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


def masked_sum(a: sp.csr_matrix, b: sp.csr_matrix, masks: list[sp.csr_matrix]) -> list[int]:
    """``[Σ (a b) ∘ mask for mask in masks]`` without ever holding all of ``a b``.

    Rows of ``a`` are taken in blocks whose product has at most ``BLOCK_PRODUCTS`` scalar
    products (``Σ_{k ∈ a[i]} nnz(b[k])`` bounds a row's entries); a single heavier row is a
    block of its own, whose product row still has at most ``n`` entries.
    """
    per_row = a @ np.diff(b.indptr).astype(np.int64)
    bounds = np.cumsum(per_row)
    totals = [0] * len(masks)
    start, n_rows = 0, a.shape[0]
    while start < n_rows:
        offset = bounds[start - 1] if start else 0
        stop = int(np.searchsorted(bounds, offset + BLOCK_PRODUCTS, side="right"))
        stop = min(max(stop, start + 1), n_rows)
        block = a[start:stop] @ b
        for i, mask in enumerate(masks):
            totals[i] += int(block.multiply(mask[start:stop]).sum())
        start = stop
    return totals


def motif_census(adjacency: sp.spmatrix | sp.sparray) -> dict[str, int]:
    """Induced counts of the five motifs of :data:`MOTIFS` in ``adjacency`` (``M[source,
    target]``, any nonzero an edge, diagonal ignored); see the module docstring for formulas."""
    m = as_binary(adjacency)
    mt = m.T.tocsr()
    r = m.multiply(mt).tocsr()
    d = (m - r).tocsr()
    d.eliminate_zeros()
    dt = d.T.tocsr()
    out_degree = np.diff(d.indptr).astype(np.int64)
    in_degree = np.diff(dt.indptr).astype(np.int64)

    ffl, closed_walks = masked_sum(d, d, [d, dt])
    out_closed_by_r, chain_closed_by_r = masked_sum(d, r, [d, dt])
    (in_closed_by_r,) = masked_sum(r, d, [d])
    n_one_way = int(d.nnz)
    fan_out_closed = 2 * ffl + out_closed_by_r
    fan_in_closed = 2 * ffl + in_closed_by_r
    return {
        "feed_forward_loop": ffl,
        "chain": int(in_degree @ out_degree) - (ffl + closed_walks + chain_closed_by_r),
        "fan_out": (int(out_degree @ out_degree) - n_one_way - fan_out_closed) // 2,
        "fan_in": (int(in_degree @ in_degree) - n_one_way - fan_in_closed) // 2,
        "cycle": closed_walks // 3,
    }
