"""The SAE recipe and the SAEs shipped for the induction model: they load as SAELens folders,
cover every site of the attention-only model, and reconstruct activations they never saw."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from circuit_atlas.ingest.attribution.model_adapter import load_model
from circuit_atlas.ingest.attribution.toy_induction import (
    induction_task,
    repeated_sequences,
    weights_path,
)
from circuit_atlas.ingest.features.dictionaries import fraction_of_variance_explained
from circuit_atlas.ingest.sae_circuits.circuit import CircuitSettings, feature_circuit
from circuit_atlas.ingest.sae_circuits.sites import build_sites, load_saes
from circuit_atlas.ingest.sae_circuits.training import (
    INDUCTION_SETTINGS,
    REPORT_FILE,
    save_saes,
    shipped_saes,
    site_activations,
    train_site_saes,
)


@pytest.fixture(scope="module")
def induction():
    return load_model(str(weights_path()))


def test_the_shipped_saes_reconstruct_unseen_sequences(induction):
    saes = load_saes(shipped_saes())
    sites = build_sites(induction, saes)
    assert [s.label for s in sites] == ["embed", "attn_0", "resid_0", "attn_1", "resid_1"]
    assert all(s.sae is not None and s.d_features == 128 for s in sites)
    tokens, _ = repeated_sequences(64, torch.Generator().manual_seed(12345))
    report = json.loads((shipped_saes() / REPORT_FILE).read_text())["sites"]
    for site, row in zip(sites, report):
        assert row["hook"] == site.hook
        x = site_activations(induction, tokens)[site.hook]
        assert site.sae is not None
        recon = site.sae.decode(site.sae.encode(x.to(site.sae.W_enc.dtype)))
        fve = fraction_of_variance_explained(x, recon.float())
        assert fve > 0.8, site.hook
        assert fve == pytest.approx(row["fraction_of_variance_explained"], abs=0.05)


def test_the_recipe_writes_folders_that_load(induction, tmp_path: Path):
    tokens, _ = repeated_sequences(32, torch.Generator().manual_seed(1))
    settings = replace(INDUCTION_SETTINGS, steps=30, d_features=16)
    saes, reports = train_site_saes(induction, tokens, settings)
    folder = save_saes(tmp_path / "saes", saes, reports, settings)
    loaded = load_saes(folder)
    assert sorted(loaded) == sorted(saes) and {s.d_features for s in loaded.values()} == {16}
    assert all(r.fraction_of_variance_explained > 0 for r in reports)


def test_an_attention_only_model_has_no_mlp_sites_and_gives_a_circuit(induction):
    sites = build_sites(induction, load_saes(shipped_saes()))
    task = induction_task(n=4)
    settings = CircuitSettings(ig_steps=1, aggregation="mean", node_threshold=0.1,
                               edge_threshold=0.02, curve=False)  # fmt: skip
    graph = feature_circuit(induction, sites, task, settings, "induction")
    kinds = set(graph.nodes["kind"])
    assert "mlp_feature" not in kinds and "mlp_error" not in kinds
    assert {"attn_feature", "resid_feature", "logits"} <= kinds and graph.n_edges > 0
