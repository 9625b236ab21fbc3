"""The tiny TransformerLens config that tests, benchmarks and the README's small examples build
their models from, defined once (a plain dict: importing it loads no torch).

Two layers, three heads of width 4, an MLP of 24: small enough that brute-force references
(every edge patched, autograd in float64) run in seconds, big enough to have every component
kind the attribution methods score. ``tests/data/sae_circuits/tiny.json`` is this dict written
out (``make_fixture.py``; a test keeps the two equal).
"""

from __future__ import annotations

from typing import Any

TINY_VOCAB = 23

TINY_CONFIG: dict[str, Any] = dict(
    n_layers=2,
    d_model=16,
    n_heads=3,
    d_head=4,
    d_mlp=24,
    n_ctx=16,
    d_vocab=TINY_VOCAB,
    act_fn="gelu",
    normalization_type="LN",
    seed=0,
)
