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

graspologic is imported lazily (its import takes ~10 s).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

from circuit_atlas.analysis.compare.identities import node_identities
from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.native_threads import jvm_safe_threads

MIN_SHARED_NODES = 10
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
    from graspologic.utils import pass_to_ranks

    shared, matrices = shared_adjacencies(graphs, by)
    # pass_to_ranks returns the type it was given: dense arrays here
    return shared, [np.asarray(pass_to_ranks(m)) for m in matrices]


def omnibus(
    graphs: list[CircuitGraph],
    by: str = "node",
    n_components: int | None = None,
    ranked: tuple[list[str], list[np.ndarray]] | None = None,
) -> OmnibusResult:
    """``ranked``: the graphs' :func:`ranked_adjacencies`, when already computed."""
    from graspologic.embed import OmnibusEmbed

    shared, ranked_matrices = ranked if ranked is not None else ranked_adjacencies(graphs, by)
    # graspologic's base class declares an out-of-sample method OmnibusEmbed leaves abstract;
    # fitting never calls it.
    embedder = OmnibusEmbed(  # ty: ignore[abstract-class-instantiation]
        n_components=n_components, algorithm="full", check_lcc=False
    )
    with jvm_safe_threads(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not fully connected": expected for circuits
        embeddings = np.asarray(embedder.fit_transform(ranked_matrices))
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

    ``ranked``: the graphs' :func:`ranked_adjacencies`, when already computed; ``progress``: a
    bar over the pairs (each takes seconds: ``n_bootstraps`` distance correlations)."""
    from graspologic.inference import latent_distribution_test
    from tqdm.auto import tqdm

    _, matrices = ranked if ranked is not None else ranked_adjacencies(graphs, by)
    pairs = list(combinations(range(len(graphs)), 2))
    if len(pairs) > max_pairs:
        raise CircuitAtlasError(
            f"{len(pairs)} pairs would each need a bootstrap test; compare at most {max_pairs} "
            "pairs (fewer graphs) or use the omnibus distances"
        )
    rows = []
    for i, j in tqdm(pairs, desc="latent distribution tests", unit="pair", disable=not progress):
        np.random.seed(seed)
        with jvm_safe_threads(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = latent_distribution_test(
                matrices[i],
                matrices[j],
                test="dcorr",
                metric="euclidean",
                n_bootstraps=n_bootstraps,
                workers=1,
            )
        rows.append(
            {
                "graph_a": graphs[i].graph_id,
                "graph_b": graphs[j].graph_id,
                "statistic": float(result[0]),
                "pvalue": float(result[1]),
            }
        )
    return pd.DataFrame(rows)
