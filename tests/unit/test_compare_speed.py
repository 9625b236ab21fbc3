"""``compare --stats`` computes graspologic's statistics without importing graspologic
(analysis/compare/omnibus.py): each step gives graspologic's own numbers on small graphs, with the
same seeds — ranks, dimensions and embeddings equal, statistics to rounding, p-values identical.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from circuit_atlas.analysis.compare.omnibus import (
    adjacency_spectral_embedding,
    elbows,
    latent_distribution_pvalues,
    omnibus,
    pass_to_ranks,
    ranked_adjacencies,
    select_dimension,
    shared_adjacencies,
    two_sample_dcorr,
)
from circuit_atlas.graph import CircuitGraph

from helpers.data import SHARED_GRAPHS, needs_shared
from helpers.graphs import random_attribution_graph
from helpers.skips import skip_test

BOOTSTRAPS = 200  # compare --stats' default


@pytest.fixture(scope="module")
def graphs() -> list[CircuitGraph]:
    """Three graphs on one node set (55 nodes) with different random edges and weights."""
    return [random_attribution_graph(seed, n_layers=4, n_pos=4, density=0.6) for seed in range(3)]


@pytest.fixture(scope="module")
def ranked(graphs: list[CircuitGraph]) -> list[np.ndarray]:
    return ranked_adjacencies(graphs, "node")[1]


def graspologic_ldt(
    a: np.ndarray, b: np.ndarray, seed: int, random_state: int | None = None
) -> tuple[float, float, np.ndarray]:
    """graspologic's test as compare --stats called it before (the global generator seeded);
    with ``random_state`` the permutation seeds come from it instead."""
    from graspologic.inference import latent_distribution_test

    np.random.seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stat, pvalue, misc = latent_distribution_test(
            a, b, test="dcorr", metric="euclidean", n_bootstraps=BOOTSTRAPS, workers=1,
            random_state=random_state,
        )  # fmt: skip
    return stat, pvalue, misc["null_distribution"]


def rows(tests: pd.DataFrame) -> list[tuple[float, float]]:
    return list(zip(tests["statistic"], tests["pvalue"]))


def test_pass_to_ranks_is_graspologics(graphs: list[CircuitGraph], ranked: list[np.ndarray]):
    from graspologic.utils import pass_to_ranks as graspologic_ranks

    _, raw = shared_adjacencies(graphs, "node")
    for matrix, shared in zip(raw, ranked):
        before = matrix.copy()
        ours = pass_to_ranks(matrix)
        assert np.array_equal(matrix, before)  # a copy: the input is untouched
        assert np.array_equal(ours, np.asarray(graspologic_ranks(matrix)))
        assert np.array_equal(ours, shared)
    binary = (raw[0] > 0).astype(float)
    assert np.array_equal(pass_to_ranks(binary), binary)  # 0/1 weights stay as they are


def test_dimensions_and_embeddings_are_graspologics(ranked: list[np.ndarray]):
    from graspologic.embed import AdjacencySpectralEmbed
    from graspologic.embed import select_dimension as graspologic_dimension

    for matrix in ranked:
        found = graspologic_dimension(matrix)[0]
        assert select_dimension(matrix) == found[-1]
        for dimension in (found[-1], found[-1] + 2):
            theirs = AdjacencySpectralEmbed(n_components=dimension).fit_transform(matrix)
            ours = adjacency_spectral_embedding(matrix, dimension)
            np.testing.assert_allclose(ours, np.asarray(theirs), rtol=0, atol=1e-12)


def test_elbows_on_a_hand_made_spectrum():
    """Two clear drops: after the 2nd value and after the 5th."""
    values = np.array([10.0, 9.8, 5.0, 4.9, 4.8, 1.0, 0.9, 0.8, 0.7])
    assert elbows(values) == [2, 5]


@pytest.mark.parametrize("n_components", [None, 2])
def test_omnibus_distances_are_graspologics(
    graphs: list[CircuitGraph], ranked: list[np.ndarray], n_components: int | None
):
    from graspologic.embed import OmnibusEmbed

    embedder = OmnibusEmbed(  # ty: ignore[abstract-class-instantiation]
        n_components=n_components, algorithm="full", check_lcc=False
    )
    theirs = np.asarray(embedder.fit_transform(ranked))
    ours = omnibus(graphs, "node", n_components=n_components)
    assert ours.embeddings.shape == theirs.shape
    # an SVD's column signs are arbitrary: equal up to one sign per column
    flat_ours = ours.embeddings.reshape(-1, theirs.shape[-1])
    flat_theirs = theirs.reshape(-1, theirs.shape[-1])
    signs = np.sign((flat_ours * flat_theirs).sum(axis=0))
    np.testing.assert_allclose(flat_ours * signs, flat_theirs, rtol=0, atol=1e-9)
    flat = theirs.reshape(len(graphs), -1)
    distance = np.sqrt(((flat[:, None] - flat[None, :]) ** 2).sum(-1)) / np.sqrt(len(ranked[0]))
    np.testing.assert_allclose(ours.distances.to_numpy(), distance, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 7])
def test_latent_distribution_tests_are_graspologics(
    graphs: list[CircuitGraph], ranked: list[np.ndarray], seed: int
):
    ours = latent_distribution_pvalues(graphs, "node", n_bootstraps=BOOTSTRAPS, seed=seed)
    for (statistic, p), (i, j) in zip(rows(ours), combinations(range(len(graphs)), 2)):
        stat, pvalue, _ = graspologic_ldt(ranked[i], ranked[j], seed, random_state=seed)
        assert statistic == pytest.approx(stat, rel=1e-9, abs=1e-12)
        assert p == pvalue  # the same permutations, the same count above the statistic


def test_the_global_seeding_compare_used_gives_the_same_pvalues(
    graphs: list[CircuitGraph], ranked: list[np.ndarray]
):
    """Before, compare seeded the global generator and graspologic drew the permutation seeds
    from it; nothing else in the test draws from it (SciPy ≥ 1.15's ``svds`` starts from its own
    generator), so the seeds and the p-values are those of ``random_state=seed``."""
    import scipy

    if tuple(int(x) for x in scipy.__version__.split(".")[:2]) < (1, 15):
        skip_test("older SciPy's svds draws its start vector from the global generator")
    ours = latent_distribution_pvalues(graphs, "node", n_bootstraps=BOOTSTRAPS, seed=0)
    for (statistic, p), (i, j) in zip(rows(ours), combinations(range(len(graphs)), 2)):
        stat, pvalue, null = graspologic_ldt(ranked[i], ranked[j], 0)
        assert statistic == pytest.approx(stat, rel=1e-9, abs=1e-12)
        assert p == pvalue
        assert len(null) == BOOTSTRAPS


@pytest.mark.parametrize("sizes", [(40, 40), (30, 45)])
def test_dcorr_permutation_test_is_hyppos(sizes: tuple[int, int]):
    """The fixed-centring statistic against hyppo's per-permutation recomputation, including
    samples of different sizes and two samples from one distribution (a large p-value)."""
    from hyppo.ksample import KSample

    rng = np.random.default_rng(sum(sizes))
    for shift in (0.0, 0.6):
        x = rng.normal(size=(sizes[0], 3))
        y = rng.normal(size=(sizes[1], 3)) + shift
        hyppo = KSample("dcorr")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = hyppo.test(x, y, reps=BOOTSTRAPS, auto=False, random_state=3)
        ours = two_sample_dcorr(x, y, BOOTSTRAPS, seed=3)
        assert ours.statistic == pytest.approx(theirs[0], rel=1e-9, abs=1e-12)
        assert ours.pvalue == theirs[1]
        np.testing.assert_allclose(
            ours.null_distribution, np.asarray(hyppo.indep_test.null_dist), rtol=1e-9, atol=1e-12
        )


@needs_shared()
@pytest.mark.slow
def test_real_analogy_graphs_give_graspologics_pvalues():
    """Three real analogy graphs, by feature (109 shared features): graspologic's p-values."""
    from circuit_atlas.ingest import load_graph

    folder = SHARED_GRAPHS / "neuronpedia" / "analogies"
    real = [load_graph(folder / f"{name}-clt-hp.json") for name in ("account", "air", "airplane")]
    _, matrices = ranked_adjacencies(real, "feature")
    ours = latent_distribution_pvalues(real, "feature")
    for (statistic, p), (i, j) in zip(rows(ours), combinations(range(len(real)), 2)):
        stat, pvalue, _ = graspologic_ldt(matrices[i], matrices[j], 0, random_state=0)
        assert statistic == pytest.approx(stat, rel=1e-9, abs=1e-12)
        assert p == pvalue


def test_the_statistics_do_not_import_graspologic():
    """Its import (torch through POT, umap, numba, hyppo) took longer than all the rest of
    ``compare --stats``."""
    code = (
        "import sys\n"
        "sys.path.insert(0, 'tests')\n"
        "from helpers.graphs import random_attribution_graph\n"
        "from circuit_atlas.analysis.compare.omnibus import (\n"
        "    latent_distribution_pvalues, omnibus, ranked_adjacencies)\n"
        "graphs = [random_attribution_graph(s, n_layers=3, n_pos=4) for s in range(3)]\n"
        "ranked = ranked_adjacencies(graphs, 'node')\n"
        "omnibus(graphs, 'node', ranked=ranked)\n"
        "latent_distribution_pvalues(graphs, 'node', ranked=ranked, n_bootstraps=20)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'graspologic', 'hyppo', "
        "'numba', 'torch', 'umap'}))\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120,
        check=True,
    )  # fmt: skip
    assert result.stdout.strip() == "[]"
