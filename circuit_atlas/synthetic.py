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
