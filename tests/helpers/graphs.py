"""Small attribution graphs whose scores are worked out by hand (used by the score tests).

Each builder returns a ``CircuitGraph``; node names in the docstrings match the ``name`` label.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from circuit_atlas.graph import CircuitGraph, GraphMetadata


def build(
    graph_id: str, nodes: dict[str, dict[str, Any]], edges: list[tuple[str, str, float]]
) -> CircuitGraph:
    """``nodes``: name → key fields (+ token_prob); ``edges``: (source, target, weight)."""
    names = list(nodes)
    rows = [{**fields, "label": name, "source_id": name} for name, fields in nodes.items()]
    index = {name: i for i, name in enumerate(names)}
    edge_rows = [{"source": index[s], "target": index[t], "weight": float(w)} for s, t, w in edges]
    return CircuitGraph(
        pd.DataFrame(rows),
        pd.DataFrame(edge_rows, columns=["source", "target", "weight"]),
        GraphMetadata(graph_id=graph_id, model="toy", transcoder_set="toy"),
    )


def tok(pos: int) -> dict[str, Any]:
    return {"kind": "embedding", "pos": pos}


def feat(layer: int, pos: int, index: int) -> dict[str, Any]:
    return {"kind": "feature", "layer": layer, "pos": pos, "feature": index}


def err(layer: int, pos: int) -> dict[str, Any]:
    return {"kind": "error", "layer": layer, "pos": pos}


def logit(pos: int, token_id: int, prob: float) -> dict[str, Any]:
    return {"kind": "logit", "pos": pos, "feature": token_id, "token_prob": prob}


def nine_node_graph(direct_token_edge: bool = True) -> CircuitGraph:
    """Replacement 11/12, completeness 32/33.

    Nodes: tokens T0 T1 T2; features F0 (L0 @0, a dead end), F1 (L0 @1), F2 (L1 @2);
    error E (L0 @2); logits La, Lb (p = 0.5 each).
    Edges (source → target: weight): T0→F0 1; T0→F1 1, T1→F1 1; F1→F2 −3, T1→F2 2, E→F2 1;
    F2→La 5; T2→Lb −0.4.
    """
    return build(
        "nine",
        {
            "T0": tok(0),
            "T1": tok(1),
            "T2": tok(2),
            "F0": feat(0, 0, 10),
            "F1": feat(0, 1, 11),
            "E": err(0, 2),
            "F2": feat(1, 2, 12),
            "La": logit(2, 100, 0.5),
            "Lb": logit(2, 200, 0.5),
        },
        [
            ("T0", "F0", 1),
            ("T0", "F1", 1),
            ("T1", "F1", 1),
            ("F1", "F2", -3),
            ("T1", "F2", 2),
            ("E", "F2", 1),
            ("F2", "La", 5),
        ]
        + ([("T2", "Lb", -0.4)] if direct_token_edge else []),
    )


def ten_node_graph() -> CircuitGraph:
    """All features pinned: 13/14, 38/39. F_b folded into E_b: 13/17, 35/39.

    Nodes: tokens T0 T1 T2; features Fz (L0 @0), Fa (L1 @0), Fb (L2 @1), Fc (L3 @2);
    errors Ea (L0 @1), Eb (L2 @1) — Eb is Fb's error node; logit L (@2, p = 0.8).
    Edges: T0→Fz 1; Fz→Fa 2; Fa→Fb 67, Ea→Fb 14, T1→Fb 19; Fb→Fc 5, Eb→Fc −1, T2→Fc 1;
    Fc→L 5, T2→L 12.
    """
    return build(
        "ten",
        {
            "T0": tok(0),
            "T1": tok(1),
            "T2": tok(2),
            "Fz": feat(0, 0, 1),
            "Fa": feat(1, 0, 2),
            "Ea": err(0, 1),
            "Fb": feat(2, 1, 3),
            "Eb": err(2, 1),
            "Fc": feat(3, 2, 4),
            "L": logit(2, 7, 0.8),
        },
        [
            ("T0", "Fz", 1),
            ("Fz", "Fa", 2),
            ("Fa", "Fb", 67),
            ("Ea", "Fb", 14),
            ("T1", "Fb", 19),
            ("Fb", "Fc", 5),
            ("Eb", "Fc", -1),
            ("T2", "Fc", 1),
            ("Fc", "L", 5),
            ("T2", "L", 12),
        ],
    )


def random_attribution_graph(
    seed: int,
    n_layers: int = 4,
    n_pos: int = 4,
    features_per_slot: int = 2,
    density: float = 0.5,
    n_logits: int = 3,
    direct_token_logit: bool = True,
) -> CircuitGraph:
    """A random layered attribution graph with every (layer, pos) error node present.

    Features read from tokens, errors and features of lower layers at positions ≤ theirs;
    logits read from everything at the last position's layers and earlier (tokens only when
    ``direct_token_logit``). Every feature and logit gets at least one input so the graph is
    scorable.
    """
    rng = np.random.default_rng(seed)
    nodes: dict[str, dict[str, Any]] = {f"T{p}": tok(p) for p in range(n_pos)}
    for layer in range(n_layers):
        for pos in range(n_pos):
            nodes[f"E{layer}.{pos}"] = err(layer, pos)
            for k in range(features_per_slot):
                nodes[f"F{layer}.{pos}.{k}"] = feat(layer, pos, 100 * layer + 10 * pos + k)
    probs = rng.dirichlet(np.ones(n_logits)) * 0.9
    for k in range(n_logits):
        nodes[f"L{k}"] = logit(n_pos - 1, 1000 + k, float(probs[k]))
    edges: list[tuple[str, str, float]] = []

    def upstream(layer: int, pos: int) -> list[str]:
        found = [f"T{p}" for p in range(pos + 1)]
        for lower in range(layer):
            for p in range(pos + 1):
                found.append(f"E{lower}.{p}")
                found += [f"F{lower}.{p}.{k}" for k in range(features_per_slot)]
        return found

    def connect(target: str, candidates: list[str]) -> None:
        chosen = [c for c in candidates if rng.random() < density] or [
            candidates[rng.integers(len(candidates))]
        ]
        edges.extend((c, target, float(rng.normal())) for c in chosen)

    for layer in range(n_layers):
        for pos in range(n_pos):
            for k in range(features_per_slot):
                connect(f"F{layer}.{pos}.{k}", upstream(layer, pos))
    for k in range(n_logits):
        candidates = upstream(n_layers, n_pos - 1)
        if not direct_token_logit:
            candidates = [c for c in candidates if not c.startswith("T")]
        connect(f"L{k}", candidates)
    return build(f"random{seed}", nodes, edges)


def assert_same_graph(a: CircuitGraph, b: CircuitGraph) -> None:
    na, ea = a.to_dataframes()
    nb, eb = b.to_dataframes()
    na, nb = (n.set_index("node_key").sort_index() for n in (na, nb))
    assert list(na.index) == list(nb.index)
    for column in ("kind", "layer", "pos", "feature", "label", "token"):
        assert na[column].astype(str).tolist() == nb[column].astype(str).tolist(), column
    for column in ("activation", "influence", "token_prob"):
        assert np.allclose(na[column].astype(float), nb[column].astype(float), equal_nan=True)
    key = ["source_key", "target_key", "channel"]
    ea, eb = (e.sort_values(key).reset_index(drop=True) for e in (ea, eb))
    assert ea[key].equals(eb[key])  # every endpoint correct
    np.testing.assert_array_equal(ea["weight"].astype(np.float32), eb["weight"].astype(np.float32))
    assert a.metadata == b.metadata
