"""Statistical comparison on a shared node set: omnibus embedding and latent distribution test.

What is assumed, so the numbers are read correctly:

* **Shared node set.** Graphs are restricted to the node identities present in *all* of them
  (node keys, or feature identities with ``by="feature"``); everything else is ignored.
* **Undirected, rank-transformed weights.** Each graph becomes ``|A| + |A|ᵀ`` on that set, then
  graspologic's ``pass_to_ranks``, so heavy-tailed attribution weights do not dominate and
  direction is dropped (the embeddings below are for undirected graphs).
* **Random dot product graphs.** Both methods model each graph as a noisy sample of latent
  positions ``X`` with ``E[A] = XXᵀ``. The omnibus embedding (Levin et al., 2017) embeds all graphs
  jointly so their latent positions share one coordinate system; the distance between two
  graphs is ‖X_a − X_b‖_F / √n.
* **The latent distribution test** (Tang et al., 2017; ``graspologic.inference.
  latent_distribution_test`` with distance correlation) asks whether two graphs' latent positions
  come from the same distribution, with a bootstrap p-value. It assumes nodes' latent positions
  are i.i.d. draws — nodes of an attribution graph are not — so treat p-values as a descriptive
  screen (small = clearly different structure), not a calibrated error rate.

docs/compare.md states the same for users; :data:`ASSUMPTIONS` is the one-line version shown in
the HTML report, the JSON output and ``--stats``'s help. With ``by="edge"`` the node set is the
node keys (an embedding needs nodes; edges are what it embeds).

How they are computed: graspologic's algorithms (``OmnibusEmbed(algorithm="full")`` and
``latent_distribution_test(test="dcorr", metric="euclidean")``), without importing graspologic.
Its import pulls in torch (through POT), umap, numba and hyppo — about 4 s on an idle 2-core
machine and several times that on a loaded one, more than everything else ``compare --stats``
does — and its test recomputes both centred 2n × 2n distance matrices of the dcorr statistic for
every bootstrap permutation, although only the labels move. Each function below is graspologic's
algorithm on the same primitives (SciPy's ``rankdata``, scikit-learn's ``randomized_svd`` and
``pairwise_distances`` with graspologic's arguments, hyppo's permutation seeds), so the results
are graspologic's: ``tests/unit/test_compare_speed.py`` checks each against it on small graphs
(same ranks, dimensions and embeddings, statistics to rounding, identical p-values). What differs:

* **The permutation statistic.** For two samples, dcorr is computed on the U-centred distance
  matrix ``C`` of the stacked latent positions and the label distances ``D_ij = |l_i − l_j|``
  (``l`` ∈ {0, 1}, one label per sample). A U-centred matrix has zero diagonal and zero row and
  column sums, so ``Σ C ∘ Ũ(D) = Σ C ∘ D`` (centring ``D`` subtracts row, column and constant
  terms that ``C`` annihilates), and with ``D_ij = l_i + l_j − 2 l_i l_j`` that is
  ``−2 lᵀ C l``. ``C`` and both variances are fixed; a permutation only reorders ``l``. So all
  bootstrap statistics are one product of the permuted labels with ``C`` (U-centring: Székely &
  Rizzo, 2014, the unbiased statistic of hyppo's ``Dcorr(bias=False)``).
* **Spectra.** The matrices are symmetric, so the singular values (dimension selection) and the
  omnibus vectors come from one ``eigh``: singular values are ``|λ|`` and the singular vectors
  the eigenvectors, up to sign (graspologic: ARPACK ``svds`` with a random start for the
  dimension and a full SVD for the omnibus). Column signs do not change the omnibus distances.
* **Reuse.** Each graph's dimension and embedding is computed once for every pair it is in.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Generator
from dataclasses import dataclass
from itertools import combinations
from typing import NamedTuple

import numpy as np
import pandas as pd

from circuit_atlas.analysis.compare.identities import node_identities
from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.native_threads import jvm_safe_threads

MIN_SHARED_NODES = 10
N_ELBOWS = 2  # graspologic's default for select_dimension
ASE_POWER_ITERATIONS = 5  # graspologic's AdjacencySpectralEmbed(n_iter=5) ...
ASE_SVD_SEED = 0  # ... and svd_seed None, which select_svd turns into 0
ASSUMPTIONS = (
    "Assumes: only nodes present in every graph; weights made undirected (|A| + |A|ᵀ) and "
    "rank-transformed; each graph a random dot product graph with i.i.d. node latent positions. "
    "Attribution-graph nodes are not i.i.d., so p-values are a descriptive screen, not calibrated "
    "error rates (docs/compare.md)."
)


@dataclass(frozen=True)
class OmnibusResult:
    node_ids: tuple[str, ...]
    embeddings: np.ndarray  # (graphs, nodes, dimensions)
    distances: pd.DataFrame  # graph × graph, ‖X_a − X_b‖_F / √n


@contextlib.contextmanager
def one_blas_thread() -> Generator[None, None, None]:
    """One BLAS thread for the spectral statistics, with or without the in-process JVM.

    Their matrices are a few hundred to a few thousand wide, where a second OpenBLAS thread buys
    little on an idle machine and costs a lot on a busy one: with the two cores shared,
    ``eigvalsh`` of a 316² matrix took 0.107 s on two threads against 0.006 s on one, a 948²
    SVD 2.4 s against 0.45 s."""
    from threadpoolctl import threadpool_limits

    with jvm_safe_threads(), threadpool_limits(limits=1):
        yield


# --- graspologic's algorithms on arrays (pure functions) -------------------------------------


class DcorrTest(NamedTuple):
    statistic: float
    pvalue: float
    null_distribution: np.ndarray  # (n_bootstraps,)


def _check_symmetric(matrix: np.ndarray) -> None:
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"expected a square matrix, got shape {matrix.shape}")
    if not np.array_equal(matrix, matrix.T):
        raise ValueError("expected a symmetric matrix: the embeddings are for undirected graphs")


def pass_to_ranks(matrix: np.ndarray) -> np.ndarray:
    """graspologic's ``pass_to_ranks`` ("simple-nonzero"), on a copy: each non-zero weight
    becomes its average rank among the non-zeros over (their count + 1), so heavy-tailed weights
    do not dominate; a 0/1 matrix is returned unchanged."""
    from scipy.stats import rankdata

    out = np.array(matrix, dtype=np.float64)
    if ((out == 0) | (out == 1)).all():
        return out
    if out.min() < 0:
        raise ValueError("pass-to-ranks needs non-negative weights")
    nonzero = out != 0
    ranks = rankdata(out[nonzero])
    out[nonzero] = ranks / (ranks.shape[0] + 1)
    return out


def _split_log_likelihoods(values: np.ndarray) -> np.ndarray:
    """Zhu & Ghodsi's profile log-likelihood of each split of ``values`` (sorted decreasing)
    into two normal groups with one pooled variance (graspologic's ``_compute_likelihood``)."""
    from scipy.stats import norm

    n = len(values)
    likelihoods = np.zeros(n)
    for idx in range(1, n + 1):
        head, tail = values[:idx], values[idx:]
        if head.size == 1 and tail.size == 1:
            likelihoods[idx - 1] = -np.inf
            continue
        mu_head = np.mean(head)
        mu_tail = np.mean(tail) if tail.size else -np.inf
        variance = (np.sum((head - mu_head) ** 2) + np.sum((tail - mu_tail) ** 2)) / (
            n - 1 - (idx < n)
        )
        std = np.sqrt(variance)
        likelihoods[idx - 1] = np.sum(norm.logpdf(head, loc=mu_head, scale=std)) + np.sum(
            norm.logpdf(tail, loc=mu_tail, scale=std)
        )
    return likelihoods


def elbows(singular_values: np.ndarray, n_elbows: int = N_ELBOWS) -> list[int]:
    """The first ``n_elbows`` Zhu–Ghodsi elbows of decreasing ``singular_values`` (each counts
    the values kept; the next elbow is searched after the previous one), as graspologic's
    ``select_dimension``."""
    found: list[int] = []
    start = 0
    for _ in range(n_elbows):
        rest = singular_values[start:]
        if rest.size <= 1:
            break
        start += int(np.argmax(_split_log_likelihoods(rest))) + 1
        found.append(start)
    return found


def _candidate_count(n: int) -> int:
    """How many leading singular values graspologic's select_dimension looks at: ⌈log₂ n⌉."""
    return int(math.ceil(math.log2(n)))


def _by_magnitude(eigenvalues: np.ndarray) -> np.ndarray:
    """Indices of a symmetric matrix's eigenvalues, largest |λ| (singular value) first."""
    return np.argsort(-np.abs(eigenvalues), kind="stable")


def select_dimension(matrix: np.ndarray, n_elbows: int = N_ELBOWS) -> int:
    """The embedding dimension graspologic picks for a symmetric ``matrix``: the last of
    ``n_elbows`` Zhu–Ghodsi elbows of its ⌈log₂ n⌉ largest singular values."""
    from scipy.linalg import eigvalsh

    _check_symmetric(matrix)
    eigenvalues = eigvalsh(matrix)
    singular = np.abs(eigenvalues)[_by_magnitude(eigenvalues)][: _candidate_count(len(matrix))]
    return elbows(singular, n_elbows)[-1]


def augment_diagonal(matrix: np.ndarray) -> np.ndarray:
    """graspologic's ``augment_diagonal``: loops dropped, then each node's mean in/out weight
    ``d_i / (n − 1)`` on the diagonal (the expected self-affinity of a random dot product graph,
    which the zero diagonal would otherwise bias)."""
    graph = matrix - np.diag(np.diag(matrix))
    degrees = (np.abs(graph).sum(axis=0) + np.abs(graph).sum(axis=1)) / 2
    return graph + np.diag(degrees / (graph.shape[0] - 1))


def adjacency_spectral_embedding(matrix: np.ndarray, n_components: int) -> np.ndarray:
    """``AdjacencySpectralEmbed(n_components).fit_transform(matrix)`` for a symmetric matrix:
    ``U √D`` of the diagonal-augmented matrix's randomized SVD with graspologic's settings
    (5 power iterations, seed 0), so the latent positions are graspologic's to the bit."""
    from sklearn.utils.extmath import randomized_svd

    _check_symmetric(matrix)
    if not 0 < n_components < len(matrix):
        raise ValueError(f"n_components must be in 1..{len(matrix) - 1}, not {n_components}")
    left, singular, _ = randomized_svd(
        augment_diagonal(matrix),
        n_components,
        n_iter=ASE_POWER_ITERATIONS,
        random_state=ASE_SVD_SEED,
    )
    return left @ np.diag(np.sqrt(singular))


def omnibus_matrix(matrices: list[np.ndarray]) -> np.ndarray:
    """The (m n) × (m n) omnibus matrix, block (i, j) = (A_i + A_j) / 2 (Levin et al. 2017),
    built as graspologic builds it."""
    stacked = np.array(matrices, ndmin=3)
    m, n = stacked.shape[0], stacked.shape[1]
    out = (stacked[:, :, None, :] + stacked.transpose(1, 0, 2)[None, :, :, :]).reshape(n * m, -1)
    out /= 2
    return out


def omnibus_embedding(matrices: list[np.ndarray], n_components: int | None = None) -> np.ndarray:
    """``OmnibusEmbed(n_components, algorithm="full").fit_transform(matrices)`` for symmetric
    matrices: the leading singular vectors of the omnibus matrix of the diagonal-augmented
    graphs, scaled by √singular value, one (n, d) block per graph; ``d`` by Zhu–Ghodsi when
    ``n_components`` is None. Column signs may differ from graspologic's (an SVD's are
    arbitrary); distances between the graphs' blocks do not depend on them."""
    from scipy.linalg import eigh

    if len(matrices) < 2:
        raise ValueError("the omnibus embedding needs at least two graphs")
    omni = omnibus_matrix([augment_diagonal(m) for m in matrices])
    _check_symmetric(omni)
    eigenvalues, eigenvectors = eigh(omni)
    order = _by_magnitude(eigenvalues)
    singular = np.abs(eigenvalues)[order]
    if n_components is None:
        n_components = elbows(singular[: _candidate_count(len(omni))])[-1]
    elif not 0 < n_components <= len(omni):
        raise ValueError(f"n_components must be in 1..{len(omni)}, not {n_components}")
    keep = order[:n_components]
    latent = eigenvectors[:, keep] @ np.diag(np.sqrt(singular[:n_components]))
    return latent.reshape(len(matrices), len(matrices[0]), n_components)


def sign_flips(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """graspologic's ``SignFlips`` (median criterion): flip each column of ``x`` whose median has
    the opposite sign of ``y``'s, since a spectral embedding is defined only up to signs."""
    flip = (np.median(x, axis=0) * np.median(y, axis=0) >= 0) * 2 - 1
    return x @ np.diag(flip)


def u_centre(distance: np.ndarray) -> np.ndarray:
    """The U-centred distance matrix of unbiased distance covariance (hyppo's
    ``_center_distmat(bias=False)``): row and column sums over (n − 2), the total over
    (n − 1)(n − 2), zero diagonal."""
    n = distance.shape[0]
    centred = (
        distance
        - distance.sum(axis=0)[None, :] / (n - 2)
        - distance.sum(axis=1)[:, None] / (n - 2)
        + distance.sum() / ((n - 1) * (n - 2))
    )
    np.fill_diagonal(centred, 0.0)
    return centred


def permutation_seeds(seed: int, n_bootstraps: int) -> np.ndarray:
    """hyppo's per-permutation seeds: ``RandomState(seed).randint(2³¹ − 1, size=reps)`` (what
    ``np.random.seed(seed)`` before graspologic's test drew from the global generator)."""
    return np.random.RandomState(seed).randint(np.iinfo(np.int32).max, size=n_bootstraps)


@functools.lru_cache(maxsize=4)
def permuted_labels(n_x: int, n_y: int, n_bootstraps: int, seed: int) -> np.ndarray:
    """Row 0: the labels (``n_x`` zeros, ``n_y`` ones); row r: them in hyppo's r-th permutation
    (``RandomState(seed_r).permutation``, :func:`permutation_seeds`). Every pair of graphs on
    one node set has the same sizes, so one call serves all pairs (read-only, cached)."""
    labels = np.concatenate([np.zeros(n_x), np.ones(n_y)])
    seeds = permutation_seeds(seed, n_bootstraps)
    orders = [np.random.RandomState(s).permutation(n_x + n_y) for s in seeds]
    permuted = np.vstack([labels, *(labels[order] for order in orders)])
    permuted.flags.writeable = False
    return permuted


def two_sample_dcorr(x: np.ndarray, y: np.ndarray, n_bootstraps: int, seed: int) -> DcorrTest:
    """hyppo's ``KSample("dcorr").test(x, y, reps=n_bootstraps, auto=False)`` with the
    permutations hyppo draws from ``seed``: unbiased distance correlation between the stacked
    samples and their group labels, p = (1 + #{null ≥ statistic}) / (1 + reps).

    Every statistic is ``−2 lᵀ C l / √(Σ C² · Σ Ũ(D)²)`` for the (permuted) labels ``l`` (module
    docstring), all of them from one (reps + 1) × N by N × N product."""
    from sklearn.metrics import pairwise_distances

    samples = np.vstack([x, y]).astype(np.float64)
    if min(len(x), len(y)) <= 3:
        raise ValueError("each sample needs more than 3 rows")
    if np.var(samples) == 0:
        raise ValueError("the test cannot run: the latent positions have zero variance")
    permuted = permuted_labels(len(x), len(y), n_bootstraps, seed)
    labels = permuted[0]
    centred = u_centre(pairwise_distances(samples, metric="euclidean"))
    label_centred = u_centre(np.abs(labels[:, None] - labels[None, :]))
    variance_x = float(np.sum(centred * centred))
    variance_y = float(np.sum(label_centred * label_centred))
    covariance = -2.0 * np.einsum("ij,ij->i", permuted @ centred, permuted)
    if variance_x <= 0 or variance_y <= 0:
        statistics = np.zeros(len(permuted))
    else:
        statistics = covariance / np.sqrt(variance_x * variance_y)
    statistic, null = float(statistics[0]), statistics[1:]
    pvalue = (1 + int((null >= statistic).sum())) / (1 + n_bootstraps)
    return DcorrTest(statistic, pvalue, null)


def latent_distribution_test(
    x_embedding: np.ndarray, y_embedding: np.ndarray, n_bootstraps: int, seed: int
) -> DcorrTest:
    """graspologic's ``latent_distribution_test(test="dcorr", metric="euclidean")`` on two
    embeddings of equal size (sign-aligned, then the dcorr two-sample test; graspologic's size
    correction applies only to graphs of different sizes, never the case on a shared node set)."""
    if x_embedding.shape != y_embedding.shape:
        raise ValueError(
            f"embeddings of one node set expected, got shapes {x_embedding.shape} and "
            f"{y_embedding.shape}"
        )
    aligned = sign_flips(x_embedding, y_embedding)
    return two_sample_dcorr(aligned, y_embedding, n_bootstraps, seed)


# --- on graphs ---------------------------------------------------------------------------------


def shared_adjacencies(
    graphs: list[CircuitGraph], by: str = "node"
) -> tuple[list[str], list[np.ndarray]]:
    """Dense symmetric |A| + |A|ᵀ restricted to identities present in every graph (summed over
    instances when ``by="feature"``), in one common order."""
    identities = [node_identities(g, by) for g in graphs]
    common = set(x for x in identities[0] if x is not None)
    for ids in identities[1:]:
        common &= {x for x in ids if x is not None}
    shared = sorted(common)
    if len(shared) < MIN_SHARED_NODES:
        raise CircuitAtlasError(
            f"the graphs share only {len(shared)} node identities (by {by}); a statistical "
            f"comparison needs at least {MIN_SHARED_NODES}"
        )
    position = {x: i for i, x in enumerate(shared)}
    matrices = []
    for graph, ids in zip(graphs, identities):
        where = np.array([position.get(x, -1) for x in ids])
        src = where[graph.edges["source"].to_numpy()]
        dst = where[graph.edges["target"].to_numpy()]
        keep = (src >= 0) & (dst >= 0)
        dense = np.zeros((len(shared), len(shared)))
        np.add.at(dense, (dst[keep], src[keep]), np.abs(graph.edges["weight"].to_numpy()[keep]))
        if not dense.any():
            raise CircuitAtlasError(
                f"graph {graph.graph_id!r} has no edge among the {len(shared)} node identities "
                f"all graphs share (by {by}); there is nothing to embed or test"
            )
        matrices.append(dense + dense.T)
    return shared, matrices


def ranked_adjacencies(
    graphs: list[CircuitGraph], by: str = "node"
) -> tuple[list[str], list[np.ndarray]]:
    """:func:`shared_adjacencies` with each matrix passed to ranks (the input of both the
    embedding and the test): compute once when running both."""
    shared, matrices = shared_adjacencies(graphs, by)
    return shared, [pass_to_ranks(m) for m in matrices]


def omnibus(
    graphs: list[CircuitGraph],
    by: str = "node",
    n_components: int | None = None,
    ranked: tuple[list[str], list[np.ndarray]] | None = None,
) -> OmnibusResult:
    """The graphs' omnibus embedding (:func:`omnibus_embedding`) and the distances between them;
    ``n_components`` None picks the dimension by Zhu–Ghodsi. ``ranked``: the graphs'
    :func:`ranked_adjacencies`, when already computed."""
    shared, ranked_matrices = ranked if ranked is not None else ranked_adjacencies(graphs, by)
    with one_blas_thread():
        embeddings = omnibus_embedding(ranked_matrices, n_components)
    ids = [g.graph_id for g in graphs]
    flat = embeddings.reshape(len(graphs), -1)
    distance = np.sqrt(((flat[:, None, :] - flat[None, :, :]) ** 2).sum(-1)) / np.sqrt(len(shared))
    return OmnibusResult(tuple(shared), embeddings, pd.DataFrame(distance, index=ids, columns=ids))


def latent_distribution_pvalues(
    graphs: list[CircuitGraph],
    by: str = "node",
    n_bootstraps: int = 200,
    seed: int = 0,
    max_pairs: int = 50,
    ranked: tuple[list[str], list[np.ndarray]] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """One latent distribution test per pair of graphs (dcorr, bootstrap p-value).

    Each pair is graspologic's ``latent_distribution_test(test="dcorr", metric="euclidean")``
    after ``np.random.seed(seed)``: both graphs embedded in the larger of their two Zhu–Ghodsi
    dimensions, then ``n_bootstraps`` permutations (:func:`latent_distribution_test`). A graph's
    dimension and its embedding at a dimension are computed once for all its pairs, and the
    permutations of a pair are one matrix product: milliseconds a pair rather than seconds.

    ``ranked``: the graphs' :func:`ranked_adjacencies`, when already computed; ``progress``: a
    bar over the pairs."""
    from tqdm.auto import tqdm

    _, matrices = ranked if ranked is not None else ranked_adjacencies(graphs, by)
    pairs = list(combinations(range(len(graphs)), 2))
    if len(pairs) > max_pairs:
        raise CircuitAtlasError(
            f"{len(pairs)} pairs would each need a bootstrap test; compare at most {max_pairs} "
            "pairs (fewer graphs) or use the omnibus distances"
        )
    dimensions: dict[int, int] = {}
    embeddings: dict[tuple[int, int], np.ndarray] = {}

    def embedding(graph: int, dimension: int) -> np.ndarray:
        if (graph, dimension) not in embeddings:
            embeddings[graph, dimension] = adjacency_spectral_embedding(matrices[graph], dimension)
        return embeddings[graph, dimension]

    rows = []
    for i, j in tqdm(pairs, desc="latent distribution tests", unit="pair", disable=not progress):
        with one_blas_thread():
            for graph in (i, j):
                if graph not in dimensions:
                    dimensions[graph] = select_dimension(matrices[graph])
            dimension = max(dimensions[i], dimensions[j])
            result = latent_distribution_test(
                embedding(i, dimension), embedding(j, dimension), n_bootstraps, seed
            )
        rows.append(
            {
                "graph_a": graphs[i].graph_id,
                "graph_b": graphs[j].graph_id,
                "statistic": result.statistic,
                "pvalue": result.pvalue,
            }
        )
    return pd.DataFrame(rows)
