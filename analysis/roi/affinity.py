"""The symmetric, non-negative affinity matrix every ROI method clusters.

How direction and sign are handled (the same for every method, so methods are comparable):

* **Sign is dropped**: affinities are |w|. Community detection (modularity, SBMs, spectral
  embeddings of adjacency) needs non-negative weights; an inhibitory edge still ties two nodes
  into one mechanism.
* **Direction is dropped**: ``W = |A| + |A|ᵀ``. Louvain and Leiden optimise undirected
  modularity, and the spectral and SBM fits here are undirected; an edge u→v counts once for
  the pair.
* **Anchors are not clustered**: in one graph, input tokens and logits stay out of the ROIs
  (they are the ends of every path); the quotient graph keeps them as their own nodes.

In one graph, a second choice, ``edge-profile`` (what Neuronpedia users group supernodes by):
W_ij = positive part of the cosine similarity of two nodes' *signed* edge profiles, the
concatenation of their incoming (row of ``A``) and outgoing (column) weights over the whole graph.
Two features that read from and write to the same places with the same signs are one
"supernode" even when no edge joins them; here sign and direction matter. It can be limited to a
stored subgraph's pinned nodes (``--subgraph``), as in Neuronpedia, where supernodes group pinned
nodes.

In one feature circuit (``attribute --method sae-feature-circuit``), *functional connectivity*
over the task's examples: ``activation-correlation`` / ``activation-covariance`` of the nodes'
per-example activations (a feature's activation, an error term's norm), or
``effect-correlation`` / ``effect-covariance`` of their per-example effects on the metric; the
positive part (a node pair that moves together), as a stochastic block model on the covariance
would see it. Nodes whose values never vary get no ties.

Across prompts (the feature × feature matrix of comparable graphs), three choices:

* ``cooccurrence`` — W_ij = number of graphs where features i and j both occur (structural);
* ``correlation`` — positive part of the Pearson correlation of the features' activations
  across prompts, 0 where absent (functional connectivity);
* ``effective`` — Σ over graphs of |edge weight| between instances of i and j (effective
  connectivity from attribution).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from circuit_atlas.analysis.compare.pairwise import check_same_model
from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.graph import CircuitGraph, NodeKey, NodeKind

ANCHORS = {
    NodeKind.EMBEDDING.value,
    NodeKind.LOGIT.value,
    NodeKind.INPUT.value,
    NodeKind.LOGITS.value,
}
CROSS_PROMPT_KINDS = ("cooccurrence", "correlation", "effective")
EDGE_PROFILE = "edge-profile"
# Functional connectivity of a feature circuit's nodes over its task's examples (the node
# columns ``example_activations`` / ``example_effects`` that ``attribute --method
# sae-feature-circuit`` writes): (signal, statistic).
FUNCTIONAL_KINDS = {
    "activation-correlation": ("example_activations", "correlation"),
    "activation-covariance": ("example_activations", "covariance"),
    "effect-correlation": ("example_effects", "correlation"),
    "effect-covariance": ("example_effects", "covariance"),
}
MAX_PROFILE_NODES = 20_000  # the cosine matrix is dense: n² float64


def feature_id(layer: int, index: int) -> str:
    """A cross-prompt ROI member: transcoder feature ``index`` of ``layer`` (one model and
    transcoder set per run, checked when the affinity is built)."""
    return f"{int(layer)}|{int(index)}"


def parse_feature_id(text: str) -> tuple[int, int]:
    layer, index = text.split("|")
    return int(layer), int(index)


@dataclass(frozen=True)
class Affinity:
    """What to cluster: ``matrix`` over ``ids`` (node keys, or feature identities)."""

    ids: tuple[str, ...]
    matrix: sp.csr_matrix  # symmetric, non-negative, zero diagonal
    layer: np.ndarray  # per id, -1 where none
    labels: tuple[str, ...]  # a human label per id (feature description, display id)
    scope: str  # "graph" | "cross-prompt"
    graph_ids: tuple[str, ...]
    kind: str  # "attribution" | one of CROSS_PROMPT_KINDS
    positions: dict[str, list[str]] = field(default_factory=dict)  # id → "graph@pos" seen
    min_graphs: int | None = None  # across prompts: features in at least this many graphs

    @property
    def n(self) -> int:
        return len(self.ids)


def _symmetric(matrix: sp.spmatrix) -> sp.csr_matrix:
    magnitude = abs(sp.csr_matrix(matrix, dtype=np.float64))
    symmetric = sp.csr_matrix(magnitude + magnitude.T)
    symmetric.setdiag(0.0)
    symmetric.eliminate_zeros()
    return symmetric


def _node_affinity(
    graph: CircuitGraph, rows: Sequence[int] | np.ndarray, matrix: sp.csr_matrix, kind: str
) -> Affinity:
    """An affinity over nodes ``rows`` of one graph: their keys, layers, labels (the display id
    where there is none) and positions, the same for every one-graph affinity kind."""
    keys = graph.keys()
    labels = graph.nodes["label"].to_numpy(dtype=object)
    return Affinity(
        ids=tuple(keys[i].encode() for i in rows),
        matrix=matrix,
        layer=graph.nodes["layer"].fillna(-1).to_numpy(dtype=np.int64)[list(rows)],
        labels=tuple(str(labels[i]) if labels[i] else keys[i].display_id() for i in rows),
        scope="graph",
        graph_ids=(graph.graph_id,),
        kind=kind,
        positions={keys[i].encode(): [f"{graph.graph_id}@{keys[i].pos}"] for i in rows},
    )


def graph_affinity(graph: CircuitGraph) -> Affinity:
    kinds = graph.nodes["kind"].to_numpy(dtype=object)
    interior = np.array([k not in ANCHORS for k in kinds])
    if not interior.any():
        raise CircuitAtlasError(f"graph {graph.graph_id!r} has no nodes to group into ROIs")
    index = np.flatnonzero(interior)
    matrix = _symmetric(graph.adjacency()[index][:, index])
    return _node_affinity(graph, index, matrix, "attribution")


def edge_profile_affinity(
    graph: CircuitGraph, members: list[str] | None = None, subset: str | None = None
) -> Affinity:
    """Cosine similarity (positive part) of the signed in/out edge profiles of the interior
    nodes, or of ``members`` (node keys; ``subset`` names them, e.g. a stored subgraph)."""
    if members is None:
        kinds = graph.nodes["kind"].to_numpy(dtype=object)
        index = np.flatnonzero([k not in ANCHORS for k in kinds])
    else:
        index = np.array(sorted({graph.index_of(NodeKey.decode(key)) for key in members}))
    if len(index) < 2:
        raise CircuitAtlasError(
            f"graph {graph.graph_id!r}: edge-profile ROIs need at least two nodes to group"
        )
    if len(index) > MAX_PROFILE_NODES:
        raise CircuitAtlasError(
            f"edge-profile ROIs compare every pair of nodes: {len(index):,} nodes is more than "
            f"{MAX_PROFILE_NODES:,}; limit them with --subgraph or prune the graph first"
        )
    adjacency = sp.csr_matrix(graph.adjacency(), dtype=np.float64)
    profiles = sp.hstack([adjacency[index], adjacency.T.tocsr()[index]]).tocsr()
    norms = np.sqrt(np.asarray(profiles.multiply(profiles).sum(axis=1)).ravel())
    scale = sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0))
    unit = scale @ profiles
    cosine = (unit @ unit.T).toarray()
    np.fill_diagonal(cosine, 0.0)
    matrix = sp.csr_matrix(np.clip(cosine, 0.0, 1.0))
    matrix.eliminate_zeros()
    kind = EDGE_PROFILE if subset is None else f"{EDGE_PROFILE}[{subset}]"
    return _node_affinity(graph, index, matrix, kind)


def functional_affinity(graph: CircuitGraph, kind: str) -> Affinity:
    """Node × node correlation or covariance (positive part) of per-example values."""
    column, statistic = FUNCTIONAL_KINDS[kind]
    if column not in graph.nodes:
        raise CircuitAtlasError(
            f"graph {graph.graph_id!r} has no per-example node values ({column}): functional "
            "ROIs need a feature circuit from `attribute --method sae-feature-circuit`"
        )
    rows = [i for i, v in enumerate(graph.nodes[column]) if isinstance(v, (list, np.ndarray))]
    if len(rows) < 2:
        raise CircuitAtlasError(f"graph {graph.graph_id!r}: fewer than two nodes have {column}")
    values = np.array([np.asarray(graph.nodes[column].iloc[i], dtype=np.float64) for i in rows])
    if values.ndim != 2 or values.shape[1] < 2:
        raise CircuitAtlasError(f"{column}: functional ROIs need at least two examples")
    centred = values - values.mean(axis=1, keepdims=True)
    matrix = centred @ centred.T / (values.shape[1] - 1)
    if statistic == "correlation":
        scale = np.sqrt(np.diag(matrix))
        with np.errstate(divide="ignore", invalid="ignore"):
            matrix = np.where(np.outer(scale, scale) > 0, matrix / np.outer(scale, scale), 0.0)
    np.fill_diagonal(matrix, 0.0)
    positive = sp.csr_matrix(np.clip(matrix, 0.0, None))
    positive.eliminate_zeros()
    return _node_affinity(graph, rows, positive, kind)


def _feature_table(graph: CircuitGraph) -> pd.DataFrame:
    nodes = graph.nodes
    features = nodes[nodes["kind"] == NodeKind.FEATURE.value]
    return pd.DataFrame(
        {
            "row": features.index.to_numpy(),
            "id": [feature_id(a, b) for a, b in zip(features["layer"], features["feature"])],
            "layer": features["layer"].astype(int).to_numpy(),
            "pos": features["pos"].astype(int).to_numpy(),
            "activation": features["activation"].abs().fillna(0.0).to_numpy(),
            "label": features["label"].to_numpy(dtype=object),
        }
    )


def cross_prompt_affinity(
    graphs: list[CircuitGraph],
    kind: str = "cooccurrence",
    min_graphs: int = 2,
    allow_mixed: bool = False,
) -> Affinity:
    """Feature × feature affinity over features present in at least ``min_graphs`` graphs."""
    if kind not in CROSS_PROMPT_KINDS:
        raise CircuitAtlasError(f"unknown affinity {kind!r}; choose from {CROSS_PROMPT_KINDS}")
    if len(graphs) < 2:
        raise CircuitAtlasError("cross-prompt ROIs need at least two graphs")
    check_same_model(graphs, allow_mixed)
    transcoders = sorted({g.metadata.transcoder_set or "unknown" for g in graphs})
    if len(transcoders) > 1 and not allow_mixed:
        raise CircuitAtlasError(
            f"the graphs use different transcoder sets ({', '.join(transcoders)}); their "
            "features are not the same features — pass --allow-mixed to group them anyway"
        )
    tables = [_feature_table(g) for g in graphs]
    presence = pd.concat([t.drop_duplicates("id")["id"] for t in tables]).value_counts()
    ids = sorted(presence[presence >= min_graphs].index, key=parse_feature_id)
    if len(ids) < 2:
        raise CircuitAtlasError(
            f"fewer than two features occur in at least {min_graphs} of the graphs; lower "
            "--min-graphs"
        )
    column = {f: i for i, f in enumerate(ids)}
    n_graphs, n = len(graphs), len(ids)
    activity = np.zeros((n_graphs, n))
    present = np.zeros((n_graphs, n))  # not activity > 0: a node without activation is present
    labels: dict[str, str] = {}
    positions: dict[str, list[str]] = {f: [] for f in ids}
    rows, cols, weights = [], [], []
    for g, (graph, table) in enumerate(zip(graphs, tables)):
        table = table[table["id"].isin(column)]
        where = table["id"].map(column).to_numpy()
        np.add.at(activity[g], where, table["activation"].to_numpy())
        present[g, where] = 1.0
        for fid, pos, label in zip(table["id"], table["pos"], table["label"]):
            positions[fid].append(f"{graph.graph_id}@{pos}")
            if label and fid not in labels:
                labels[fid] = str(label)
        if kind == "effective":
            row_to_col = dict(zip(table["row"], where))
            edges = graph.edges
            src = edges["source"].map(row_to_col)
            dst = edges["target"].map(row_to_col)
            keep = src.notna() & dst.notna()
            rows.append(dst[keep].to_numpy(dtype=np.int64))
            cols.append(src[keep].to_numpy(dtype=np.int64))
            weights.append(edges["weight"][keep].abs().to_numpy())
    if kind == "cooccurrence":
        occurs = sp.csr_matrix(present)  # the product of sparse presence stays sparse
        matrix = (occurs.T @ occurs).tocsr()
    elif kind == "correlation":
        centred = activity - activity.mean(axis=0)
        scale = np.sqrt((centred**2).sum(axis=0))
        scale[scale == 0] = np.inf
        correlation = (centred.T @ centred) / np.outer(scale, scale)
        matrix = sp.csr_matrix(np.clip(correlation, 0.0, None))
    else:
        matrix = sp.csr_matrix(
            (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )
    matrix = _symmetric(matrix) if kind == "effective" else sp.csr_matrix(matrix)
    matrix.setdiag(0.0)
    matrix.eliminate_zeros()
    return Affinity(
        ids=tuple(ids),
        matrix=matrix,
        layer=np.array([parse_feature_id(f)[0] for f in ids]),
        labels=tuple(labels.get(f, f"feature {f}") for f in ids),
        scope="cross-prompt",
        graph_ids=tuple(g.graph_id for g in graphs),
        kind=kind,
        positions=positions,
        min_graphs=min_graphs,
    )


def planted_affinity(matrix: sp.spmatrix, name: str = "planted") -> Affinity:
    """An affinity from any weighted (possibly directed) matrix — for tests and benchmarks."""
    symmetric = _symmetric(matrix)
    n = symmetric.shape[0]
    return Affinity(
        ids=tuple(str(i) for i in range(n)),
        matrix=symmetric,
        layer=np.full(n, -1),
        labels=tuple(str(i) for i in range(n)),
        scope="graph",
        graph_ids=(name,),
        kind="attribution",
    )
