"""What an attribution job measures: one number per example, from the logits at its last token.

Every metric returns a ``[batch]`` tensor; methods sum it (and divide by the number of examples
for ``--aggregate mean``), so scores are additive over examples and batches.

- ``logit_diff``: mean answer logit − mean foil logit;
- ``prob_diff``: Σ p(answers) − Σ p(foils) (greater-than's metric);
- ``kl``: KL(p_clean ‖ p), the divergence from the clean next-token distribution. It is 0 with a
  zero gradient on the clean input, so plain ``eap`` gives all-zero scores with it; use an IG
  method (which takes gradients away from the clean point).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.ingest.attribution.tasks import Batch
from circuit_atlas.registrar import registrar

Metric = Callable[[torch.Tensor, Batch, torch.Tensor | None], torch.Tensor]
METRICS: dict[str, Metric] = {}


_register = registrar(METRICS)


def last_token_logits(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """``[batch, vocab]`` logits at each example's last real token, at least float32."""
    rows = torch.arange(logits.shape[0], device=logits.device)
    picked = logits[rows, batch.last]
    return picked.to(torch.promote_types(picked.dtype, torch.float32))


def _gather_mean(values: torch.Tensor, ids: list[tuple[int, ...]], reduce: str) -> torch.Tensor:
    out = []
    for row, tokens in enumerate(ids):
        picked = values[row, list(tokens)]
        out.append(picked.mean() if reduce == "mean" else picked.sum())
    return torch.stack(out)


@_register("logit_diff")
def logit_diff(logits: torch.Tensor, batch: Batch, clean_logprobs: torch.Tensor | None = None):
    last = last_token_logits(logits, batch)
    return _gather_mean(last, batch.answers, "mean") - _gather_mean(last, batch.foils, "mean")


@_register("prob_diff")
def prob_diff(logits: torch.Tensor, batch: Batch, clean_logprobs: torch.Tensor | None = None):
    probs = torch.softmax(last_token_logits(logits, batch), dim=-1)
    return _gather_mean(probs, batch.answers, "sum") - _gather_mean(probs, batch.foils, "sum")


@_register("kl")
def kl_divergence(logits: torch.Tensor, batch: Batch, clean_logprobs: torch.Tensor | None = None):
    if clean_logprobs is None:
        raise CircuitAtlasError("the kl metric needs the clean run's log-probabilities")
    logprobs = torch.log_softmax(last_token_logits(logits, batch), dim=-1)
    return (clean_logprobs.exp() * (clean_logprobs - logprobs)).sum(-1)


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise CircuitAtlasError(
            f"unknown metric {name!r}: choose one of {', '.join(METRICS)}"
        ) from None
