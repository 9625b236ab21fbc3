"""Small random models and tasks for attribution tests, plus independent reference numbers.

The references use TransformerLens directly (``run_with_cache``, ``retain_grad``, one hook per
edge), never the engine under test, so agreement means two implementations agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from circuit_atlas.ingest.attribution.model_adapter import LoadedModel, load_model
from circuit_atlas.ingest.attribution.tasks import Batch, Task, TaskExample
from circuit_atlas.testing.tiny_model import TINY_CONFIG, TINY_VOCAB

VOCAB = TINY_VOCAB


def tiny_model(attn_only: bool = False, seed: int = 0, **overrides: object) -> LoadedModel:
    cfg = {**TINY_CONFIG, "attn_only": attn_only, "seed": seed}
    cfg.update(overrides)
    return load_model(cfg, dtype="float64")


def random_task(n: int = 5, seed: int = 1, lengths: tuple[int, int] = (4, 8)) -> Task:
    gen = torch.Generator().manual_seed(seed)
    examples = []
    for _ in range(n):
        length = int(torch.randint(*lengths, (1,), generator=gen))
        clean = torch.randint(3, VOCAB, (length,), generator=gen).tolist()
        corrupted = torch.randint(3, VOCAB, (length,), generator=gen).tolist()
        examples.append(TaskExample(clean, corrupted, (1,), (2,)))
    return Task("random", examples, "logit_diff")


def logit_diff(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    rows = torch.arange(logits.shape[0])
    last = logits[rows, batch.last]
    return last[:, 1] - last[:, 2]


def node_outputs(model: LoadedModel, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each node's output by name, [batch, pos, d], from TransformerLens' own cache."""
    _, cache = model.model.run_with_cache(tokens)
    out = {"input": cache["blocks.0.hook_resid_pre"]}
    for layer in range(model.n_layers):
        for head in range(model.n_heads):
            out[f"a{layer}.h{head}"] = cache[f"blocks.{layer}.attn.hook_result"][:, :, head]
        if model.has_mlps:
            out[f"m{layer}"] = cache[f"blocks.{layer}.hook_mlp_out"]
    return out


def input_hook(model: LoadedModel, node: str, channel: str) -> tuple[str, int | None]:
    """(hook name, head index or None) of a node's input."""
    if node == "logits":
        return f"blocks.{model.n_layers - 1}.hook_resid_post", None
    if node.startswith("m"):
        return f"blocks.{int(node[1:])}.hook_mlp_in", None
    layer, head = node[1:].split(".h")
    return f"blocks.{int(layer)}.hook_{channel}_input", int(head)


def input_gradients(
    model: LoadedModel, batch: Batch, replace: tuple[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor | None]:
    """∂(Σ logit diff)/∂(each node input) at the clean prompts, by retain_grad; ``replace`` =
    (hook, value) sets that activation to a constant first (``blocks.0.hook_resid_pre``: the
    embeddings)."""
    kept: dict[str, torch.Tensor] = {}

    def keep(value: torch.Tensor, hook) -> torch.Tensor:
        value.retain_grad()
        kept[hook.name] = value
        return value

    def leaf(value: torch.Tensor, hook) -> torch.Tensor:
        if replace is not None and replace[0] == hook.name:
            value = replace[1]
        return value.detach().clone().requires_grad_(True)

    def constant(value: torch.Tensor, hook) -> torch.Tensor:
        assert replace is not None
        return replace[1].detach().clone()

    names = {f"blocks.{model.n_layers - 1}.hook_resid_post"}
    for layer in range(model.n_layers):
        names |= {f"blocks.{layer}.hook_{c}_input" for c in "qkv"}
        if model.has_mlps:
            names.add(f"blocks.{layer}.hook_mlp_in")
    hooks = [("blocks.0.hook_resid_pre", leaf)] + [(n, keep) for n in sorted(names)]
    if replace is not None and replace[0] != "blocks.0.hook_resid_pre":
        hooks.append((replace[0], constant))
    with torch.enable_grad():
        logits = model.model.run_with_hooks(batch.clean, fwd_hooks=hooks)
        logit_diff(logits, batch).sum().backward()
    return {name: tensor.grad for name, tensor in kept.items()}


def output_gradients(model: LoadedModel, batch: Batch) -> dict[str, torch.Tensor]:
    """∂(Σ logit diff)/∂(each node's output) at the clean prompts, by retain_grad, keyed by
    node name like :func:`node_outputs`."""
    kept: dict[str, torch.Tensor] = {}

    def keep(value: torch.Tensor, hook) -> torch.Tensor:
        if hook.name == "blocks.0.hook_resid_pre":
            value = value.detach().requires_grad_(True)
        else:
            value.retain_grad()
        kept[hook.name] = value
        return value

    names = ["blocks.0.hook_resid_pre"]
    for layer in range(model.n_layers):
        names.append(f"blocks.{layer}.attn.hook_result")
        if model.has_mlps:
            names.append(f"blocks.{layer}.hook_mlp_out")
    with torch.enable_grad():
        logits = model.model.run_with_hooks(batch.clean, fwd_hooks=[(n, keep) for n in names])
        logit_diff(logits, batch).sum().backward()
    out = {"input": kept["blocks.0.hook_resid_pre"].grad}
    for layer in range(model.n_layers):
        result = kept[f"blocks.{layer}.attn.hook_result"].grad
        for head in range(model.n_heads):
            if result is not None:
                out[f"a{layer}.h{head}"] = result[:, :, head]
        if model.has_mlps:
            out[f"m{layer}"] = kept[f"blocks.{layer}.hook_mlp_out"].grad
    return {name: grad for name, grad in out.items() if grad is not None}


def patch_one_edge(
    model: LoadedModel, batch: Batch, source_delta: torch.Tensor, node: str, channel: str
) -> torch.Tensor:
    """Σ logit diff on the clean prompts with ``source_delta`` added to one node's input."""
    name, head = input_hook(model, node, channel)

    def add(value: torch.Tensor, hook) -> torch.Tensor:
        value = value.clone()
        if head is None:
            value += source_delta
        else:
            value[:, :, head] += source_delta
        return value

    with torch.no_grad():
        logits = model.model.run_with_hooks(batch.clean, fwd_hooks=[(name, add)])
    return logit_diff(logits, batch).sum()


def write_tiny_job(folder: Path) -> tuple[Path, Path]:
    """``tiny.json`` (TINY_CONFIG) and ``task.jsonl`` (six token-id pairs) in ``folder``: what
    ``circuit-atlas attribute --model CONFIG --task TASK`` runs in seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    task = folder / "task.jsonl"
    rows = [
        {"clean": e.clean, "corrupted": e.corrupted, "answer": 1, "foil": 2}
        for e in random_task(n=6).examples
    ]
    task.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return config, task
