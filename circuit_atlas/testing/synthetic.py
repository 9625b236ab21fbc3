"""Synthetic attribution graphs of any size, for benchmarks and crash tests.

Written in the Neuronpedia JSON format (schema_version 1) so they travel through the same
importer as real files. Edges only run from earlier to later layers, as in real graphs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from circuit_atlas.ingest.neuronpedia import cantor_pair


def synthetic_neuronpedia(
    n_nodes: int,
    n_edges: int,
    n_layers: int = 12,
    n_pos: int = 8,
    seed: int = 0,
    slug: str = "synthetic",
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    n_features = max(n_nodes - n_pos - 4, 1)
    layers = np.sort(rng.integers(0, n_layers, n_features))
    nodes: list[dict[str, Any]] = []
    for i, layer in enumerate(layers):
        pos = int(rng.integers(0, n_pos))
        nodes.append(
            {
                "node_id": f"{layer}_{i}_{pos}",
                "feature": cantor_pair(int(layer), i),
                "layer": str(layer),
                "ctx_idx": pos,
                "feature_type": "cross layer transcoder",
                "activation": float(rng.random()),
            }
        )
    for pos in range(n_pos):
        nodes.append(
            {
                "node_id": f"E_{pos}_{pos}",
                "feature": pos,
                "layer": "E",
                "ctx_idx": pos,
                "feature_type": "embedding",
            }
        )
    for token in range(4):
        nodes.append(
            {
                "node_id": f"{n_layers}_{token}_{n_pos - 1}",
                "feature": token,
                "layer": str(n_layers),
                "ctx_idx": n_pos - 1,
                "feature_type": "logit",
                "token_prob": 0.25,
            }
        )
    # Sources are features/embeddings, targets features/logits, source row < target row for
    # features (layers are sorted), so the graph is acyclic.
    n = len(nodes)
    logits = np.arange(n_features + n_pos, n)
    pairs: set[tuple[int, int]] = set()
    while len(pairs) < n_edges:
        need = n_edges - len(pairs)
        src = rng.integers(0, n_features + n_pos, need * 2)
        dst = rng.integers(0, n_features + len(logits), need * 2)
        dst = np.where(dst >= n_features, logits[(dst - n_features) % len(logits)], dst)
        ok = (src >= n_features) | ((src < dst) & (dst < n_features)) | np.isin(dst, logits)
        for s, t in zip(src[ok], dst[ok]):
            if len(pairs) >= n_edges:
                break
            if s < n_features and t < n_features and layers[s] >= layers[t]:
                continue
            pairs.add((int(s), int(t)))
    ordered = sorted(pairs, key=lambda p: (p[1], p[0]))
    weights = rng.normal(size=len(ordered))
    links = [
        {"source": nodes[s]["node_id"], "target": nodes[t]["node_id"], "weight": float(w)}
        for (s, t), w in zip(ordered, weights)
    ]
    return _neuronpedia_document(slug, n_pos, nodes, links)


def _neuronpedia_document(
    slug: str, n_pos: int, nodes: list[dict[str, Any]], links: list[dict[str, Any]]
) -> dict[str, Any]:
    """The schema-1 Neuronpedia file around synthetic nodes and links (one model, one set)."""
    return {
        "metadata": {
            "slug": slug,
            "scan": "synthetic-model",
            "prompt_tokens": [f"t{p}" for p in range(n_pos)],
            "schema_version": 1,
            "info": {"transcoder_set": "synthetic-transcoders"},
        },
        "nodes": nodes,
        "links": links,
    }


# Share of each kind of edge besides token → logit and error → logit (every pair, as in real
# graphs), as in gemma-dollar (circuit-tracer, 40k edges): most edges run feature → feature.
EDGE_MIX = {
    ("embedding", "feature"): 0.07,
    ("error", "feature"): 0.2,
    ("feature", "feature"): 0.595,
    ("feature", "logit"): 0.135,
}
SAME_POSITION = 0.4  # share of edges that stay at one position (0.34–0.45 in real graphs)


def layered_neuronpedia(
    n_nodes: int,
    n_edges: int,
    n_layers: int = 26,
    n_pos: int = 12,
    n_logits: int = 10,
    seed: int = 0,
    slug: str = "layered",
) -> dict[str, Any]:
    """A synthetic graph shaped like a real attribution graph, as Neuronpedia JSON.

    Unlike :func:`synthetic_neuronpedia` (uniform random edges, a few logits), the shape follows
    the real corpus, so path queries meet realistic fan-in: one token per position, one error
    node per (layer, position), features spread uniformly over layers and positions,
    ``n_logits`` logits at the last position. Every token and error node feeds every logit and
    every feature has an input; the other edges split by kind as in ``EDGE_MIX`` and go to a
    later layer and a later-or-equal position (``SAME_POSITION`` of them at the same one).
    |weights| are log-normal around 0.3 (median 0.2–0.34, 99th percentile 5–9 in real graphs),
    70 % positive.
    """
    rng = np.random.default_rng(seed)
    n_errors = n_layers * n_pos
    n_features = n_nodes - n_pos - n_errors - n_logits
    if n_features < n_layers * n_pos:
        raise ValueError(f"{n_nodes} nodes leave too few features for {n_layers}×{n_pos} slots")
    # Rows: features sorted by (layer, pos), then errors, tokens, logits.
    f_layer = rng.integers(0, n_layers, n_features)
    f_pos = rng.integers(0, n_pos, n_features)
    order = np.lexsort((f_pos, f_layer))
    f_layer, f_pos = f_layer[order], f_pos[order]
    e_layer, e_pos = np.repeat(np.arange(n_layers), n_pos), np.tile(np.arange(n_pos), n_layers)
    first_error, first_token = n_features, n_features + n_errors
    first_logit = first_token + n_pos
    layer = np.concatenate([f_layer, e_layer, np.full(n_pos, -1), np.full(n_logits, n_layers)])
    pos = np.concatenate([f_pos, e_pos, np.arange(n_pos), np.full(n_logits, n_pos - 1)])
    slot_start = np.searchsorted(f_layer * n_pos + f_pos, np.arange(n_layers * n_pos + 1))

    def features_in(layers: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """A random feature row in each (layer, position) slot; -1 where the slot is empty."""
        slot = layers * n_pos + positions
        start, count = slot_start[slot], slot_start[slot + 1] - slot_start[slot]
        row = start + (rng.random(len(slot)) * np.maximum(count, 1)).astype(np.int64)
        return np.where(count > 0, row, -1)

    def sources_for(targets: np.ndarray, kind: str) -> np.ndarray:
        """One source of ``kind`` per target: earlier layer, earlier or same position."""
        t_layer, t_pos = layer[targets], pos[targets]
        same = rng.random(len(targets)) < SAME_POSITION
        s_pos = np.where(same, t_pos, (rng.random(len(targets)) * (t_pos + 1)).astype(np.int64))
        if kind == "embedding":
            return first_token + s_pos
        ok = t_layer > 0
        s_layer = (rng.random(len(targets)) * np.maximum(t_layer, 1)).astype(np.int64)
        if kind == "error":
            return np.where(ok, first_error + s_layer * n_pos + s_pos, -1)
        return np.where(ok, features_in(s_layer, s_pos), -1)

    to_logits = np.arange(first_error, first_logit)  # errors and tokens: every logit
    logits = np.arange(first_logit, n_nodes)
    complete = np.stack([np.repeat(to_logits, n_logits), np.tile(logits, len(to_logits))], axis=1)
    # Every feature hears from something (scores refuse features without inputs): a token at
    # layer 0, an error node below it elsewhere.
    rows = np.arange(n_features)
    first_input = np.where(
        layer[rows] == 0, sources_for(rows, "embedding"), sources_for(rows, "error")
    )
    inputs = np.stack([first_input, rows], axis=1)
    taken = first_input * n_nodes + rows
    pairs, budget = [complete, inputs], n_edges - len(complete) - len(inputs)
    if budget < 0:
        raise ValueError(f"{n_edges} edges are fewer than the {-budget + n_edges} required")
    left = budget
    for i, ((source_kind, target_kind), share) in enumerate(EDGE_MIX.items()):
        want = left if i == len(EDGE_MIX) - 1 else round(budget * share)
        left -= want
        found = np.empty(0, dtype=np.int64)  # source * n_nodes + target
        while len(found) < want:
            draw = 2 * (want - len(found)) + 100
            targets = (
                rng.integers(0, n_features, draw)
                if target_kind == "feature"
                else rng.integers(first_logit, n_nodes, draw)
            )
            sources = sources_for(targets, source_kind)
            fresh = (sources * n_nodes + targets)[sources >= 0]
            found = np.unique(np.concatenate([found, fresh[~np.isin(fresh, taken)]]))
        chosen = found[rng.permutation(len(found))[:want]]
        pairs.append(np.stack([chosen // n_nodes, chosen % n_nodes], axis=1))
    edges = np.concatenate(pairs)
    weights = rng.lognormal(np.log(0.3), 1.3, len(edges))
    weights *= np.where(rng.random(len(edges)) < 0.7, 1.0, -1.0)
    ids = (
        [f"{layer[i]}_{i}_{pos[i]}" for i in range(n_features)]
        + [f"err_{layer[i]}_{pos[i]}" for i in range(first_error, first_token)]
        + [f"E_{p}" for p in range(n_pos)]
        + [f"logit_{t}" for t in range(n_logits)]
    )
    nodes: list[dict[str, Any]] = []
    for i in range(n_nodes):
        node: dict[str, Any] = {"node_id": ids[i], "layer": str(layer[i]), "ctx_idx": int(pos[i])}
        if i < first_error:
            node.update(
                feature=cantor_pair(int(layer[i]), i),
                feature_type="cross layer transcoder",
                activation=float(rng.random()),
            )
        elif i < first_token:
            node.update(feature=None, feature_type="mlp reconstruction error")
        elif i < first_logit:
            node.update(feature=int(pos[i]), layer="E", feature_type="embedding")
        else:
            t = i - first_logit
            node.update(feature=t, feature_type="logit", token_prob=0.5**t)
        nodes.append(node)
    ordered = edges[np.lexsort((edges[:, 0], edges[:, 1]))]  # target by target, as exported
    links = [
        {"source": ids[s], "target": ids[t], "weight": float(w)}
        for (s, t), w in zip(ordered.tolist(), weights.tolist())
    ]
    return _neuronpedia_document(slug, n_pos, nodes, links)
