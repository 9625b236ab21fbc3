"""``train-transcoders``' recipe on the tiny model: files the loader reads, an honest report,
an optimiser that learns what can be learned, and graphs attributed through the result."""

from __future__ import annotations

import math

import pytest
import torch

from circuit_atlas.errors import DictionaryError
from circuit_atlas.ingest.features.attribution import attribute_features
from circuit_atlas.ingest.features.dictionaries import (
    fraction_of_variance_explained,
    load_dictionaries,
)
from circuit_atlas.ingest.features.training import (
    TrainingSettings,
    collect_activations,
    docstring_text,
    read_training_report,
    train_layer,
    train_transcoders,
)

from helpers.models import VOCAB, tiny_model

SETTINGS = TrainingSettings(d_features=24, n_tokens=600, seq_len=16, steps=150, batch_size=128)


def windows(n: int, seq_len: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (n, seq_len), generator=gen)
    ids[:, 0] = 1
    return ids


def test_trained_transcoders_load_and_the_report_is_their_real_held_out_quality(tmp_path):
    model = tiny_model()
    n_windows = math.ceil(660 / 15)
    tokens = windows(n_windows, 16)
    reports = train_transcoders(model, tmp_path / "tc", SETTINGS, windows=tokens)
    dictionaries = load_dictionaries(tmp_path / "tc")
    assert dictionaries.n_layers == model.n_layers and dictionaries.kind == "transcoder"
    assert read_training_report(tmp_path / "tc") == reports
    # recompute each layer's held-out FVE from the saved files and the model itself
    inputs, outputs = collect_activations(model, tokens)
    held_out = SETTINGS.n_tokens // 10
    for layer, report in enumerate(reports):
        d = dictionaries.layers[layer].to(torch.float32)
        x, y = inputs[layer][-held_out:].float(), outputs[layer][-held_out:].float()
        fve = fraction_of_variance_explained(y, d.decode(d.encode(x)))
        assert fve == pytest.approx(report.fraction_of_variance_explained, abs=1e-5)
        assert 0 < report.mean_active_features <= SETTINGS.d_features
    graph = attribute_features(model, dictionaries, [1, 7, 3, 12, 5], "trained", batch_size=8)
    graph.validate()
    assert (graph.nodes["kind"] == "feature").any()


def test_the_optimiser_learns_a_target_a_transcoder_can_represent():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4000, 12, generator=gen)
    encoder = torch.randn(16, 12, generator=gen)
    decoder = torch.randn(16, 12, generator=gen)
    y = torch.relu(x @ encoder.T) @ decoder + 0.5
    settings = TrainingSettings(d_features=32, steps=1500, batch_size=256, l1_coefficient=0.0)
    tensors = train_layer(x[:3500], y[:3500], settings, layer=0)
    recon = torch.relu(x[3500:] @ tensors["W_enc"].T + tensors["b_enc"]) @ tensors["W_dec"]
    fve = fraction_of_variance_explained(y[3500:], recon + tensors["b_dec"])
    assert fve > 0.9  # learns (random init, dead units); not a test of optimality


def test_training_text_is_docstrings_read_without_importing():
    import subprocess
    import sys

    texts = docstring_text(("click",))
    first = [next(texts) for _ in range(3)]
    assert all(len(t) >= 200 for t in first)
    assert next(docstring_text(("click",))) == first[0]  # a fixed order
    assert list(docstring_text(("no_such_package_here",))) == []
    # packages are parsed, not imported (a fresh process: other tests import them)
    script = (
        "import sys\n"
        "from circuit_atlas.ingest.features.training import docstring_text\n"
        "assert next(docstring_text(('sklearn',)))\n"
        "assert 'sklearn' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)


def test_too_few_positions_are_refused(tmp_path):
    with pytest.raises(DictionaryError, match="nothing to train on"):
        train_transcoders(tiny_model(), tmp_path / "tc", SETTINGS, windows=windows(2, 16))
