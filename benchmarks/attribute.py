"""EAP-IG on inputs (5 steps) against 6 bare forward+backward passes of the same model and batch.

    python benchmarks/attribute.py [--model smollm2-135m] [--batch 8] [--repeats 3] [--device cpu]

The baseline is what the method cannot avoid: 6 passes of forward, metric, and backward to the
embeddings (no weight gradients), with no hooks. ``eap-ig-inputs`` with 5 steps does one corrupted
forward, 5 hooked forward/backward passes that record node outputs and sum the gradients at all
node inputs, and one contraction of those sums with the activation differences. Target: ratio
≤ 1.2. The model defaults to SmolLM2-135M (123,211 edges) when its wheel is installed, else a
GPT-2-small-shaped random model from a config.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from circuit_atlas.ingest.attribution.ioi import ioi_rows  # noqa: E402
from circuit_atlas.ingest.attribution.methods import attribute  # noqa: E402
from circuit_atlas.ingest.attribution.metrics import logit_diff  # noqa: E402
from circuit_atlas.ingest.attribution.model_adapter import (  # noqa: E402
    LoadedModel,
    load_model,
    smollm2_gguf,
)
from circuit_atlas.ingest.attribution.tasks import Batch, Task, TaskExample  # noqa: E402

GPT2_SHAPE = dict(
    n_layers=12,
    d_model=768,
    n_heads=12,
    d_head=64,
    d_mlp=3072,
    n_ctx=64,
    d_vocab=50257,
    act_fn="gelu_new",
    normalization_type="LN",
    seed=0,
)


def build_task(model: LoadedModel, n: int) -> Task:
    if model.tokenizer is not None:
        examples = []
        for row in ioi_rows(n):
            examples.append(
                TaskExample(
                    model.encode(row["clean"]),
                    model.encode(row["corrupted"]),
                    (model.single_token(row["answer"]),),
                    (model.single_token(row["foil"]),),
                )
            )
        return Task("ioi", examples, "logit_diff")
    gen = torch.Generator().manual_seed(0)
    examples = [
        TaskExample(
            torch.randint(0, model.d_vocab, (15,), generator=gen).tolist(),
            torch.randint(0, model.d_vocab, (15,), generator=gen).tolist(),
            (1,),
            (2,),
        )
        for _ in range(n)
    ]
    return Task("random", examples, "logit_diff")


def bare_passes(model: LoadedModel, batch: Batch, passes: int) -> None:
    """Forward, metric, backward to the embeddings: the minimum a gradient method needs."""

    def leaf(value: torch.Tensor, hook: object) -> torch.Tensor:
        return value.detach().requires_grad_(True)

    for _ in range(passes):
        with torch.enable_grad(), model.model.hooks(fwd_hooks=[(model.input_output_hook(), leaf)]):
            logits = model.model(batch.clean, return_type="logits")
            logit_diff(logits, batch, None).sum().backward()


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    source = args.model or ("smollm2-135m" if smollm2_gguf() else GPT2_SHAPE)
    model = load_model(source, device=args.device)
    task = build_task(model, args.batch)
    batch = next(task.batches(args.batch, model.pad_id)).to(model.device)
    print(
        f"model {model.name}: {model.n_layers} layers × {model.n_heads} heads; "
        f"batch {batch.size} × {batch.clean.shape[1]} tokens; device {model.device}; "
        f"torch threads {torch.get_num_threads()}"
    )
    bare_passes(model, batch, 1)  # warm-up
    attribute(model, task, "eap-ig-inputs", ig_steps=5, batch_size=args.batch, progress=False)
    baseline, ours = [], []
    for _ in range(args.repeats):
        synchronize(model.device)
        start = time.perf_counter()
        bare_passes(model, batch, 6)
        synchronize(model.device)
        baseline.append(time.perf_counter() - start)
        start = time.perf_counter()
        result = attribute(
            model, task, "eap-ig-inputs", ig_steps=5, batch_size=args.batch, progress=False
        )
        synchronize(model.device)
        ours.append(time.perf_counter() - start)
    base, mine = statistics.median(baseline), statistics.median(ours)
    print(f"edges scored: {result.graph.n_edges:,}")
    print(f"baseline: 6 bare forward+backward passes   {base:8.3f} s (median of {args.repeats})")
    print(f"eap-ig-inputs, 5 steps                      {mine:8.3f} s")
    print(f"ratio {mine / base:.2f} (target ≤ 1.2)")


if __name__ == "__main__":
    main()
