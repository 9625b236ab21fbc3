"""Feature attribution: backward passes against their lower bound, and time per prompt.

    python benchmarks/feature_attribution.py [--repeats 3] [--batch 32] [--device cpu]

Two cases, each a random model with random JumpReLU transcoders (no files needed): the tiny test
model (2 layers, width 16) and a GPT-2-small-shaped one (12 layers, width 768, 1,024 features a
layer, ~1% active) keeping the 256 most influential features. The lower bound on backward passes
is ⌈rows ÷ batch⌉ (every row needs one backward slot); circuit-tracer's phased feature selection
costs a few partial batches more. Time per prompt is the median of ``--repeats`` runs; the peer
figure is one plain forward+backward of the same model and batch (what one backward pass costs
at least), so ``time ÷ (passes × plain pass)`` is the overhead of the hooks and the scoring.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from circuit_atlas.ingest.attribution.model_adapter import LoadedModel, load_model  # noqa: E402
from circuit_atlas.ingest.features.attribution import attribute_features  # noqa: E402
from circuit_atlas.ingest.features.dictionaries import Dictionary, DictionarySet  # noqa: E402
from circuit_atlas.testing.tiny_model import TINY_CONFIG  # noqa: E402

TINY = {**TINY_CONFIG, "act_fn": "relu"}
GPT2_SHAPE = dict(n_layers=12, d_model=768, n_heads=12, d_head=64, d_mlp=3072, n_ctx=64,
                  d_vocab=50257, act_fn="gelu_new", normalization_type="LN", seed=0)  # fmt: skip


def random_set(model: LoadedModel, d_features: int, bias: float) -> DictionarySet:
    gen = torch.Generator().manual_seed(0)
    d, dtype = model.d_model, model.dtype
    layers = []
    for layer in range(model.n_layers):
        layers.append(
            Dictionary(
                layer=layer,
                input_hook=f"blocks.{layer}.ln2.hook_normalized",
                output_hook=f"blocks.{layer}.hook_mlp_out",
                W_enc=torch.randn(d_features, d, generator=gen, dtype=dtype) / d**0.5,
                W_dec=torch.randn(d_features, d, generator=gen, dtype=dtype) / d**0.5,
                b_enc=torch.full((d_features,), bias, dtype=dtype),
                b_dec=torch.zeros(d, dtype=dtype),
                threshold=torch.full((d_features,), 0.05, dtype=dtype),
            )
        )
    return DictionarySet(tuple(layers), "random", "transcoder")


def plain_pass(model: LoadedModel, tokens: torch.Tensor, batch: int) -> float:
    """One forward of ``batch`` copies and one backward to the embeddings, with no other hooks."""
    leaf: list[torch.Tensor] = []

    def embed(value: torch.Tensor, hook: object) -> torch.Tensor:
        leaf.append(value.detach().requires_grad_())
        return leaf[0]

    started = time.perf_counter()
    with torch.enable_grad():
        logits = model.run(tokens[None].expand(batch, -1), hooks=[("hook_embed", embed)])
        torch.autograd.grad(logits[:, -1].sum(), leaf)
    return time.perf_counter() - started


def case(name: str, cfg: dict, d_features: int, bias: float, max_nodes: int | None,
         args: argparse.Namespace) -> None:  # fmt: skip
    model = load_model(cfg, dtype="float32", device=args.device)
    dictionaries = random_set(model, d_features, bias)
    tokens = torch.randint(
        1, model.d_vocab, (args.tokens,), generator=torch.Generator().manual_seed(1)
    )
    times, stats = [], {}
    for _ in range(args.repeats):
        started = time.perf_counter()
        attribute_features(model, dictionaries, tokens, name, batch_size=args.batch,
                           max_feature_nodes=max_nodes, stats=stats)  # fmt: skip
        times.append(time.perf_counter() - started)
    plain = statistics.median(plain_pass(model, tokens, args.batch) for _ in range(3))
    bound = math.ceil(stats["rows"] / args.batch)
    seconds = statistics.median(times)
    overhead = seconds / (stats["backward_passes"] * plain)
    print(
        f"{name:12} {stats['active_features']:>6} active, {stats['rows']:>4} rows: "
        f"{stats['backward_passes']:>3} backward passes (lower bound {bound}, "
        f"ratio {stats['backward_passes'] / bound:.2f}); {seconds:7.2f} s per prompt; "
        f"plain pass {plain * 1000:6.0f} ms -> overhead {overhead:.2f}x",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--tokens", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(f"device {args.device}, batch {args.batch}, {args.tokens} tokens", flush=True)
    case("tiny", TINY, 32, 0.0, None, args)
    case("gpt2-shaped", GPT2_SHAPE, 1024, -2.0, 256, args)


if __name__ == "__main__":
    main()
