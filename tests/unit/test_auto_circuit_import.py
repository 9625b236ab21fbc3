"""auto-circuit ``PruneScores`` files: each score lands on the edge auto-circuit means, by its
documented layout (source index = Resid Start, then each block's heads and MLP), checked on
hand-placed scores; and one clear error per file auto-circuit's layout cannot map to edges."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.ingest import load_graph

N_HEADS = 3


def prune_scores(n_layers: int = 2, mlps: bool = True, parallel: bool = False) -> dict:
    """Zero scores in auto-circuit's shapes for a TransformerLens model with ``N_HEADS`` heads."""
    per_block = N_HEADS + int(mlps)
    scores = {}
    for block in range(n_layers):
        upstream = 1 + block * per_block
        for channel in "qkv":
            scores[f"blocks.{block}.hook_{channel}_input"] = torch.zeros(N_HEADS, upstream)
        if mlps:
            width = upstream if parallel else upstream + N_HEADS
            scores[f"blocks.{block}.hook_mlp_in"] = torch.zeros(width)
    scores[f"blocks.{n_layers - 1}.hook_resid_post"] = torch.zeros(1 + n_layers * per_block)
    return scores


def load(tmp_path: Path, scores: dict, name: str = "scores.pt"):
    path = tmp_path / name
    torch.save(scores, path)
    return load_graph(path, graph_id="ac")


def weights(graph) -> dict[str, float]:
    names = [k.display_id() for k in graph.keys()]
    e = graph.edges
    return {
        f"{names[s]}->{names[t]}" + (f"<{c}>" if c else ""): float(w)
        for s, t, c, w in zip(e["source"], e["target"], e["channel"], e["weight"])
    }


def test_scores_land_on_the_edges_auto_circuit_means(tmp_path):
    scores = prune_scores()
    scores["blocks.1.hook_k_input"][2, 3] = 7.0  # source 3 = a0.h2 (Resid Start, A0.0, A0.1, A0.2)
    scores["blocks.0.hook_mlp_in"][3] = -2.0  # a0.h2 -> MLP 0
    scores["blocks.1.hook_resid_post"][4] = 5.0  # source 4 = MLP 0 -> Resid End
    scores["blocks.0.hook_q_input"][1, 0] = 0.5  # Resid Start -> A0.1.Q
    graph = load(tmp_path, scores)
    assert graph.metadata.source_format == "auto-circuit"
    found = {name: w for name, w in weights(graph).items() if w}
    assert found == {
        "a0.h2->a1.h2<k>": 7.0,
        "a0.h2->m0": -2.0,
        "m0->logits": 5.0,
        "input->a0.h1<q>": 0.5,
    }
    assert graph.n_edges == sum(t.numel() for t in scores.values())


def test_attention_only_and_parallel_models_are_read_from_the_shapes(tmp_path):
    attn_only = load(tmp_path, prune_scores(mlps=False), "a.pt")
    assert "mlp" not in set(attn_only.nodes_frame()["kind"])
    assert attn_only.metadata.extra["parallel_attn_mlp"] is False
    parallel = load(tmp_path, prune_scores(parallel=True), "p.pt")
    assert parallel.metadata.extra["parallel_attn_mlp"] is True
    sequential = load(tmp_path, prune_scores(), "s.pt")
    assert parallel.n_edges == sequential.n_edges - 2 * N_HEADS  # MLPs miss their own heads


def test_files_that_are_not_edge_scores_get_one_clear_error(tmp_path):
    fused = {
        k.replace("hook_q_input", "hook_attn_in"): v
        for k, v in prune_scores().items()
        if "hook_k_input" not in k and "hook_v_input" not in k
    }
    per_position = prune_scores()
    per_position["blocks.0.hook_mlp_in"] = torch.zeros(5, 4)
    nan = prune_scores()
    nan["blocks.1.hook_v_input"][0, 0] = float("nan")
    missing = prune_scores()
    del missing["blocks.1.hook_mlp_in"]
    cases = {
        "fused": (fused, "separate_qkv=True"),
        "positions": (per_position, "scores per token position"),
        "nan": (nan, "NaN or infinite"),
        "missing": (missing, r"missing \['blocks.1.hook_mlp_in'\]"),
    }
    for name, (scores, message) in cases.items():
        with pytest.raises(CircuitAtlasError, match=message):
            load(tmp_path, scores, f"{name}.pt")
