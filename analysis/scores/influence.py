"""Row normalisation and influence, as circuit-tracer defines them, solved rather than iterated.

circuit-tracer (``graph.py``) defines, for ``A[target, source]``:

* ``Â = |A| / max(Σ_j |A_ij|, 1e-10)`` (each row sums to 1, or is all zero);
* influence ``I = Σ_{k≥1} wᵀ Âᵏ`` with ``w`` the logit weights,

and computes ``I`` by multiplying ``wᵀÂ`` by ``Â`` until the product vanishes — as many sparse
products as the graph is deep. Here the series is summed exactly instead: with ``q = I + w``
(the "total flow" through a node), ``qᵀ = wᵀ + qᵀ Â``, i.e. ``(𝟙 − Âᵀ) q = w``. On an acyclic
graph, ordering nodes downstream-first makes ``𝟙 − Âᵀ`` triangular, so one sparse triangular
solve gives ``q`` in O(edges).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve_triangular

from circuit_atlas.errors import InvalidGraphError

NORMALISATION_FLOOR = 1e-10  # circuit-tracer's clamp on row sums


def normalise(adjacency: sp.spmatrix) -> sp.csr_matrix:
    """``Â_ij = |A_ij| / max(Σ_j |A_ij|, 1e-10)`` (sparse, explicit zeros removed)."""
    absolute = abs(sp.csr_matrix(adjacency, dtype=np.float64))
    absolute.eliminate_zeros()
    row_sums = np.asarray(absolute.sum(axis=1)).ravel()
    scale = 1.0 / np.maximum(row_sums, NORMALISATION_FLOOR)
    return sp.csr_matrix(sp.diags(scale) @ absolute)


def _gather(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Concatenate ``indices[indptr[r]:indptr[r+1]]`` for every r in ``rows``, vectorised."""
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=indices.dtype)
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return indices[offsets + np.arange(total)]


def topological_order(adjacency: sp.spmatrix, names: tuple[str, ...] | None = None) -> np.ndarray:
    """Node indices upstream-first (Kahn's algorithm, one numpy step per depth level).

    Raises ``InvalidGraphError`` on a cycle: influence is a finite series only on a DAG.
    """
    matrix = sp.csr_matrix(adjacency)
    matrix.eliminate_zeros()
    n = matrix.shape[0]
    in_degree = np.diff(matrix.indptr).astype(np.int64)  # row = target: its number of sources
    outgoing = sp.csr_matrix(matrix.T)  # row = source: its targets
    frontier = np.flatnonzero(in_degree == 0)
    levels = []
    placed = 0
    while frontier.size:
        levels.append(frontier)
        placed += frontier.size
        targets = _gather(outgoing.indptr, outgoing.indices, frontier)
        if targets.size == 0:
            break
        touched, counts = np.unique(targets, return_counts=True)
        in_degree[touched] -= counts
        frontier = touched[in_degree[touched] == 0]
    if placed < n:
        stuck = np.flatnonzero(in_degree > 0)
        shown = [names[i] if names else str(i) for i in stuck[:3]]
        example = ", ".join(shown)
        raise InvalidGraphError(
            f"the graph has a cycle ({stuck.size} nodes on or after cycles, e.g. {example}); "
            "influence is defined on acyclic attribution graphs only"
        )
    return np.concatenate(levels) if levels else np.empty(0, dtype=np.int64)


def total_flow(
    normalised: sp.csr_matrix, logit_weights: np.ndarray, order: np.ndarray | None = None
) -> np.ndarray:
    """``q = w + I``: solve ``(𝟙 − Âᵀ) q = w`` by one triangular solve in topological order."""
    n = normalised.shape[0]
    if order is None:
        order = topological_order(normalised)
    downstream_first = order[::-1]
    transposed = sp.csr_matrix(normalised.T)[downstream_first][:, downstream_first]
    system = sp.csr_matrix(sp.identity(n, format="csr") - transposed)
    flow = np.empty(n, dtype=np.float64)
    if n:
        flow[downstream_first] = spsolve_triangular(
            system, logit_weights[downstream_first], lower=True, unit_diagonal=True
        )
    return flow


def influence(
    normalised: sp.csr_matrix, logit_weights: np.ndarray, order: np.ndarray | None = None
) -> np.ndarray:
    """``I = Σ_{k≥1} wᵀ Âᵏ`` (circuit-tracer's ``compute_influence``), summed exactly."""
    return total_flow(normalised, logit_weights, order) - logit_weights
