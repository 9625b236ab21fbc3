"""The ROI method registry: one function per method, each mapping an affinity to labels.

Every method takes the symmetric non-negative affinity (see :mod:`.affinity`) and
:class:`RoiParams`, is deterministic for a given ``seed``, and returns labels ``0..K-1`` in a
canonical order (largest ROI first, ties by first member), so the same run always writes the
same ROIs. graspologic and scikit-learn are imported inside the methods that need them. Each
method is registered with the :class:`RoiParams` fields it reads (:data:`USES`): the run id
hashes only those, and giving ``k`` to a method that does not read it is an error.

* ``louvain`` — networkx Louvain, modularity with ``resolution``.
* ``leiden`` — graspologic's Leiden (undirected), modularity with ``resolution``.
* ``spectral`` — graspologic adjacency (or Laplacian, ``embedding="laplacian"``) spectral
  embedding, then a Gaussian mixture whose number of components (1..``max_k``) is chosen by BIC;
  ``k`` fixes it.
* ``spectral-sklearn`` — scikit-learn spectral clustering on the precomputed affinity; needs
  ``k``.
* ``agglomerative`` — average-linkage clustering on distance 1 − affinity (the affinity read as a
  similarity in [0, 1]; larger values count as 1), cut where groups are less than
  ``min_similarity`` alike: the grouping Neuronpedia users propose for supernodes
  when run on the ``edge-profile`` affinity (cosine of signed in/out edge profiles). The number
  of ROIs follows from the threshold; ``k`` fixes it instead.
* ``sbm`` / ``dcsbm`` — graspologic's (degree-corrected) stochastic block model. Its estimators
  reject weighted graphs, so the affinity is **binarised**: an entry is an edge when it is at or
  above the ``binarize_quantile`` quantile of the non-zero affinities (default 0.5: the stronger
  half). Candidate partitions for K = 1..``max_k`` blocks come from k-means on the spectral
  embedding of the binary graph; the K with the lowest BIC is kept (``k`` fixes it). The
  criterion is the SBM form of BIC, the integrated classification likelihood (Daudin, Picard &
  Robin 2008): ln(#dyads)·#block parameters − 2·log-likelihood − 2·Σ_k n_k ln(n_k/n), i.e.
  each dyad is one Bernoulli observation and the block labels are paid for too (without that
  term k-means labels fitted to noise win on structureless graphs). graspologic's estimators
  work on the dense n × n matrix; above ``DENSE_LIMIT`` nodes the same criterion is computed
  from sparse block edge counts instead: the Bernoulli SBM likelihood exactly (it depends only
  on the counts; a test checks it against graspologic), and for ``dcsbm`` the Poisson
  degree-corrected likelihood of Karrer & Newman (2011), Σ e_kl ln(e_kl / κ_k κ_l), which also
  needs only the counts. ``details["likelihood"]`` says which was used. On the dense path a
  candidate partition with a one-node block is skipped (``details["skipped_k"]``): such a block
  has no dyads, and graspologic's estimators divide by zero on it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.registrar import registrar


@dataclass(frozen=True)
class RoiParams:
    seed: int = 0
    resolution: float = 1.0
    k: int | None = None
    max_k: int = 10
    embedding: str = "adjacency"  # spectral: "adjacency" | "laplacian"
    n_components: int | None = None
    binarize_quantile: float = 0.5
    min_similarity: float = 0.5  # agglomerative: merge groups at least this similar

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def used_by(self, method: str) -> dict[str, Any]:
        """The parameters ``method`` reads (see :data:`USES`): what the run id hashes and what
        the ROIs record, so a value a method ignores cannot split one result into two runs."""
        return {name: value for name, value in self.as_dict().items() if name in USES[method]}


@dataclass(frozen=True)
class MethodResult:
    labels: np.ndarray
    details: dict[str, Any] = field(default_factory=dict)  # e.g. BIC per K


Method = Callable[[sp.csr_matrix, RoiParams], MethodResult]
METHODS: dict[str, Method] = {}
USES: dict[str, frozenset[str]] = {}  # method → the RoiParams fields it reads

_file = registrar(METHODS)


def register(name: str, uses: tuple[str, ...]) -> Callable[[Method], Method]:
    """File a method under ``name`` with the :class:`RoiParams` fields it reads (``uses``)."""
    unknown = set(uses) - set(RoiParams.__dataclass_fields__)
    if unknown:
        raise ValueError(f"ROI method {name!r} names unknown parameters {sorted(unknown)}")

    def add(function: Method) -> Method:
        USES[name] = frozenset(uses)
        return _file(name)(function)

    return add


_EMBEDDING = ("max_k", "embedding", "n_components")  # _embed: max_k sizes the embedding too


def canonical(labels: np.ndarray) -> np.ndarray:
    """Relabel 0..K-1: larger ROIs first, ties by their first member."""
    labels = np.asarray(labels)
    uniques, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = sorted(range(len(uniques)), key=lambda i: (-counts[i], first[i]))
    mapping = {uniques[i]: rank for rank, i in enumerate(order)}
    return np.array([mapping[v] for v in labels], dtype=np.int64)


def _check_k(k: int | None, n: int) -> None:
    if k is not None and not 1 <= k <= n:
        raise CircuitAtlasError(f"k = {k} is not between 1 and the {n} nodes to group")


@register("louvain", uses=("seed", "resolution"))
def louvain(matrix: sp.csr_matrix, params: RoiParams) -> MethodResult:
    import networkx as nx

    graph = nx.from_scipy_sparse_array(sp.triu(matrix, k=1).tocsr())
    communities = nx.community.louvain_communities(
        graph, weight="weight", resolution=params.resolution, seed=params.seed
    )
    labels = np.empty(matrix.shape[0], dtype=np.int64)
    for index, members in enumerate(communities):
        labels[list(members)] = index
    return MethodResult(canonical(labels))


@register("leiden", uses=("seed", "resolution"))
def leiden(matrix: sp.csr_matrix, params: RoiParams) -> MethodResult:
    from graspologic.partition import leiden as graspologic_leiden

    n = matrix.shape[0]
    upper = sp.triu(matrix, k=1).tocoo()
    edges = list(zip(upper.row.tolist(), upper.col.tolist(), upper.data.tolist()))
    found = graspologic_leiden(
        edges, resolution=params.resolution, random_seed=params.seed + 1, trials=1
    ) if edges else {}  # fmt: skip
    labels = np.array([found.get(i, -1 - i) for i in range(n)])  # isolated: own ROI
    return MethodResult(canonical(labels))


def _embed(matrix: sp.csr_matrix, params: RoiParams) -> np.ndarray:
    from graspologic.embed import AdjacencySpectralEmbed, LaplacianSpectralEmbed

    n = matrix.shape[0]
    components = params.n_components or min(max(params.max_k, 2), n - 1)
    kind = LaplacianSpectralEmbed if params.embedding == "laplacian" else AdjacencySpectralEmbed
    embedder = kind(
        n_components=components, algorithm="randomized", svd_seed=params.seed, check_lcc=False
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        embedded = embedder.fit_transform(sp.csr_array(matrix, dtype=np.float64))
    return np.asarray(embedded[0] if isinstance(embedded, tuple) else embedded)


@register("spectral", uses=("seed", "k", *_EMBEDDING))
def spectral(matrix: sp.csr_matrix, params: RoiParams) -> MethodResult:
    from sklearn.mixture import GaussianMixture

    n = matrix.shape[0]
    _check_k(params.k, n)
    embedded = _embed(matrix, params)
    candidates = [params.k] if params.k else range(1, min(params.max_k, n) + 1)
    best, bics = None, {}
    for k in candidates:
        model = GaussianMixture(k, covariance_type="full", random_state=params.seed, n_init=2,
                                reg_covar=1e-6)  # fmt: skip
        model.fit(embedded)
        bics[k] = float(model.bic(embedded))
        if best is None or bics[k] < bics[best[0]]:
            best = (k, model.predict(embedded))
    assert best is not None
    return MethodResult(canonical(best[1]), {"bic": bics, "chosen_k": best[0]})


@register("spectral-sklearn", uses=("seed", "k"))
def spectral_sklearn(matrix: sp.csr_matrix, params: RoiParams) -> MethodResult:
    from sklearn.cluster import SpectralClustering

    if params.k is None:
        raise CircuitAtlasError("spectral-sklearn needs --k (the number of ROIs)")
    _check_k(params.k, matrix.shape[0])
    model = SpectralClustering(
        n_clusters=params.k, affinity="precomputed", random_state=params.seed,
        assign_labels="cluster_qr", eigen_solver="lobpcg",  # arpack's shift-invert: 4x slower
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = model.fit_predict(matrix)
    return MethodResult(canonical(labels))


def binarize(matrix: sp.csr_matrix, quantile: float) -> np.ndarray:
    """Dense 0/1 adjacency: entries at or above the quantile of the non-zero affinities."""
    values = matrix.data[matrix.data > 0]
    dense = np.zeros(matrix.shape)
    if values.size:
        cut = np.quantile(values, quantile)
        coo = matrix.tocoo()
        strong = coo.data >= cut
        dense[coo.row[strong], coo.col[strong]] = 1.0
    return dense


DENSE_LIMIT = 4000  # above this many nodes, block models are fitted from sparse counts


def sparse_binarize(matrix: sp.csr_matrix, quantile: float) -> sp.csr_matrix:
    values = matrix.data[matrix.data > 0]
    cut = np.quantile(values, quantile) if values.size else np.inf
    coo = matrix.tocoo()
    strong = coo.data >= cut
    return sp.csr_matrix(
        (np.ones(int(strong.sum())), (coo.row[strong], coo.col[strong])), shape=matrix.shape
    )


def block_counts(
    binary: sp.csr_matrix, labels: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """(E, sizes): E_kl = ordered edges from block k to block l; sizes n_k."""
    n = binary.shape[0]
    member = sp.csr_matrix((np.ones(n), (np.arange(n), labels)), shape=(n, k))
    edges = np.asarray((member.T @ binary @ member).todense(), dtype=np.float64)
    return edges, np.bincount(labels, minlength=k).astype(np.float64)


def sparse_sbm_log_likelihood(binary: sp.csr_matrix, labels: np.ndarray, k: int) -> float:
    """Bernoulli SBM log-likelihood of an undirected graph (one term per dyad, as graspologic's
    ``SBMEstimator.score``) at the MLE p_kl = E_kl / N_kl; the sum over ordered pairs halved."""
    edges, sizes = block_counts(binary, labels, k)
    pairs = np.outer(sizes, sizes) - np.diag(sizes)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(pairs > 0, edges / np.where(pairs > 0, pairs, 1), 0.0)
        present = np.where(edges > 0, edges * np.log(np.where(p > 0, p, 1)), 0.0)
        absent = pairs - edges
        missing = np.where(absent > 0, absent * np.log1p(-np.where(p < 1, p, 0)), 0.0)
    return float((present + missing).sum()) / 2


def sparse_dcsbm_log_likelihood(binary: sp.csr_matrix, labels: np.ndarray, k: int) -> float:
    """Karrer–Newman Poisson DCSBM log-likelihood (its partition-dependent part, per dyad)."""
    edges, _ = block_counts(binary, labels, k)
    kappa = edges.sum(axis=1)
    expected = np.outer(kappa, kappa)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(edges > 0, edges * np.log(edges / np.where(expected > 0, expected, 1)), 0)
    return float(terms.sum()) / 2


def _label_cost(labels: np.ndarray, k: int, n: int) -> float:
    sizes = np.bincount(labels, minlength=k)
    sizes = sizes[sizes > 0]
    return -2.0 * float((sizes * np.log(sizes / n)).sum())


def _dense_fit(binary: np.ndarray, degree_corrected: bool) -> Callable[[np.ndarray, int], tuple]:
    """(labels, k) → (log-likelihood, #parameters) with graspologic's estimators."""
    from graspologic.models import DCSBMEstimator, SBMEstimator

    def fit(labels: np.ndarray, k: int) -> tuple[float, float]:
        if degree_corrected:
            model = DCSBMEstimator(directed=False, degree_directed=False, loops=False)
        else:
            model = SBMEstimator(directed=False, loops=False)
        with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
            warnings.simplefilter("ignore")
            model.fit(binary, y=labels)
            # graspologic's own .bic() needs an attribute its fit does not set
            return float(model.score(binary)), float(model._n_parameters())

    return fit


def _sparse_fit(
    binary: sp.csr_matrix, degree_corrected: bool
) -> Callable[[np.ndarray, int], tuple]:
    """(labels, k) → (log-likelihood, #parameters) from sparse block counts."""
    n = binary.shape[0]

    def fit(labels: np.ndarray, k: int) -> tuple[float, float]:
        if degree_corrected:
            return sparse_dcsbm_log_likelihood(binary, labels, k), k * (k + 1) / 2 + n
        return sparse_sbm_log_likelihood(binary, labels, k), k * (k + 1) / 2

    return fit


def _block_model(matrix: sp.csr_matrix, params: RoiParams, degree_corrected: bool) -> MethodResult:
    """Candidate partitions for K = 1..max_k from k-means on the binary graph's spectral
    embedding; keep the K of lowest ICL-style BIC (see the module docstring)."""
    from sklearn.cluster import KMeans

    n = matrix.shape[0]
    _check_k(params.k, n)
    sparse = n > DENSE_LIMIT
    if sparse:
        binary = sparse_binarize(matrix, params.binarize_quantile)
        fit, n_edges = _sparse_fit(binary, degree_corrected), int(binary.nnz // 2)
        embedded = _embed(binary, params)
        likelihood = "sparse-poisson-dcsbm" if degree_corrected else "sparse-bernoulli-sbm"
    else:
        dense = binarize(matrix, params.binarize_quantile)
        fit, n_edges = _dense_fit(dense, degree_corrected), int(dense.sum() // 2)
        embedded = _embed(sp.csr_matrix(dense), params) if n > 2 else np.zeros((n, 1))
        likelihood = "graspologic"
    dyads = n * (n - 1) / 2
    candidates = [params.k] if params.k else range(1, min(params.max_k, n) + 1)
    best, bics, skipped = None, {}, []
    for k in candidates:
        labels = (
            np.zeros(n, dtype=np.int64)
            if k == 1
            else KMeans(k, n_init=10, random_state=params.seed).fit_predict(embedded)
        )
        if not sparse and (np.bincount(labels) == 1).any():
            skipped.append(k)  # a one-node block has no dyads: graspologic divides by zero
            continue
        log_likelihood, n_parameters = fit(labels, k)
        bics[k] = float(
            np.log(dyads) * n_parameters - 2 * log_likelihood + _label_cost(labels, k, n)
        )
        if best is None or bics[k] < bics[best[0]]:
            best = (k, labels)
    if best is None:
        raise CircuitAtlasError(
            f"k-means split the {n} nodes into {params.k} blocks with a one-node block, which "
            "a block model cannot fit; try a smaller --k"
        )
    details = {
        "bic": bics,
        "chosen_k": best[0],
        "binarize_quantile": params.binarize_quantile,
        "binary_edges": n_edges,
        "likelihood": likelihood,
    }
    if skipped:
        details["skipped_k"] = skipped  # candidates with a one-node block (dense path)
    return MethodResult(canonical(best[1]), details)


@register("agglomerative", uses=("k", "min_similarity"))
def agglomerative(matrix: sp.csr_matrix, params: RoiParams) -> MethodResult:
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    n = matrix.shape[0]
    _check_k(params.k, n)
    if n < 2:
        return MethodResult(np.zeros(n, dtype=np.int64))
    if not 0.0 <= params.min_similarity <= 1.0:
        raise CircuitAtlasError(f"min_similarity must be in [0, 1], got {params.min_similarity}")
    # The affinity is read as a similarity in [0, 1] (edge-profile and correlation affinities
    # are), so --min-similarity means the same on every graph; larger weights count as 1.
    distance = 1.0 - np.clip(matrix.toarray(), 0.0, 1.0)
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="average")
    if params.k is not None:
        labels = fcluster(tree, t=params.k, criterion="maxclust")
    else:
        labels = fcluster(tree, t=1.0 - params.min_similarity, criterion="distance")
    return MethodResult(canonical(labels), {"linkage": "average"})


@register("sbm", uses=("seed", "k", "binarize_quantile", *_EMBEDDING))
def sbm(matrix: sp.csr_matrix, params: RoiParams) -> MethodResult:
    return _block_model(matrix, params, degree_corrected=False)


@register("dcsbm", uses=("seed", "k", "binarize_quantile", *_EMBEDDING))
def dcsbm(matrix: sp.csr_matrix, params: RoiParams) -> MethodResult:
    return _block_model(matrix, params, degree_corrected=True)
