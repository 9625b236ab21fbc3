"""Write ``tiny.pt`` with circuit-tracer's own ``Graph.to_pt`` and its own scores beside it.

The fixture is a small random attribution graph in circuit-tracer's node order (features,
errors by layer then position, tokens, logits) with causal structure: a node only receives
from earlier layers and from positions at or before its own. ``tiny.expected.json`` records what
circuit-tracer itself computes on that graph (``compute_graph_scores`` and ``prune_graph`` at the
default thresholds), so the importer and Circuit Atlas's scores are checked against the peer
tool, not against themselves.

Regenerate (needs the circuit-tracer package; it is not a dependency of Circuit Atlas):

    pip install --no-deps --target /tmp/ct circuit-tracer==0.5.0
    PYTHONPATH=/tmp/ct python tests/data/circuit_tracer/make_fixture.py
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import torch
from circuit_tracer.attribution.targets import LogitTarget
from circuit_tracer.graph import Graph, compute_graph_scores, prune_graph
from circuit_tracer.utils.tl_nnsight_mapping import UnifiedConfig

HERE = Path(__file__).resolve().parent
N_LAYERS, N_POS, D_TRANSCODER = 3, 4, 50


def build() -> Graph:
    generator = torch.Generator().manual_seed(7)
    active = torch.tensor(
        [
            [layer, pos, int(torch.randint(D_TRANSCODER, (1,), generator=generator))]
            for layer in range(N_LAYERS)
            for pos in range(N_POS)
            if (layer + pos) % 4 != 3
        ]
    )
    selected = torch.arange(0, active.shape[0], dtype=torch.long)[:-2]  # the last two unselected
    features = active[selected]
    n_feat, n_err, n_tok, n_logit = len(selected), N_LAYERS * N_POS, N_POS, 3
    n = n_feat + n_err + n_tok + n_logit
    layer_of = torch.full((n,), -1)  # tokens: layer -1; logits: layer N_LAYERS
    pos_of = torch.zeros(n, dtype=torch.long)
    layer_of[:n_feat], pos_of[:n_feat] = features[:, 0], features[:, 1]
    errors = torch.arange(n_err)
    layer_of[n_feat : n_feat + n_err] = errors // N_POS
    pos_of[n_feat : n_feat + n_err] = errors % N_POS
    pos_of[n_feat + n_err : n_feat + n_err + n_tok] = torch.arange(n_tok)
    layer_of[-n_logit:], pos_of[-n_logit:] = N_LAYERS, N_POS - 1
    causal = (layer_of[None, :] < layer_of[:, None]) & (pos_of[None, :] <= pos_of[:, None])
    receives = torch.zeros(n, dtype=torch.bool)
    receives[:n_feat] = True
    receives[-n_logit:] = True
    present = torch.rand((n, n), generator=generator) < 0.6
    weights = torch.randn((n, n), generator=generator)
    adjacency = torch.where(causal & present & receives[:, None], weights, torch.zeros(()))
    # every feature reads its own token's embedding, as in a real graph (no all-zero rows)
    own_token = n_feat + n_err + pos_of[:n_feat]
    adjacency[torch.arange(n_feat), own_token] = weights[torch.arange(n_feat), own_token]
    cfg = UnifiedConfig(
        n_layers=N_LAYERS,
        d_model=8,
        d_head=4,
        n_heads=2,
        d_mlp=16,
        d_vocab=100,
        tokenizer_name="tiny",
        model_name="tiny-ct",
        original_architecture="GPT2LMHeadModel",
    )
    return Graph(
        input_string="a b c d",
        input_tokens=torch.tensor([11, 12, 13, 14]),
        active_features=active,
        adjacency_matrix=adjacency.float(),
        cfg=cfg,
        selected_features=selected,
        activation_values=torch.rand(active.shape[0], generator=generator) * 5,
        logit_targets=[LogitTarget(" x", 40), LogitTarget(" y", 41), LogitTarget(" z", 42)],
        logit_probabilities=torch.tensor([0.6, 0.25, 0.1]),
        scan="tiny-transcoders",
    )


def main() -> None:
    graph = build()
    graph.to_pt(str(HERE / "tiny.pt"))
    replacement, completeness = compute_graph_scores(graph)
    pruned = prune_graph(graph, 0.8, 0.98)
    expected = {
        "generator": f"circuit-tracer {version('circuit-tracer')}",
        "replacement": replacement,
        "completeness": completeness,
        "pruned_node_mask": pruned.node_mask.tolist(),
        "pruned_n_edges": int(pruned.edge_mask.sum()),
        "cumulative_scores": pruned.cumulative_scores.tolist(),
    }
    (HERE / "tiny.expected.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    main()
