"""Train an SAE at every feature-circuit site of a model, offline, and save them in SAELens's
layout: the recipe behind the SAEs the demo ships for the induction model.

Deliberately small, like the transcoder recipe (``ingest/features/training.py``, whose trainer
this reuses with input = output): activations of every site on the model's own kind of text —
for the shipped induction model, its repeated random sequences — a ReLU SAE per site minimising
normalised MSE plus a decoder-norm-weighted L1, and each SAE's fraction of variance explained,
mean active features and dead features on a held-out tenth, written to ``training.json``.

Retrain the shipped set with
``python -m circuit_atlas.ingest.sae_circuits.training --out circuit_atlas/data/saes/induction_2l``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import save_file

from circuit_atlas.ingest.attribution.model_adapter import LoadedModel
from circuit_atlas.ingest.features.dictionaries import fraction_of_variance_explained
from circuit_atlas.ingest.features.training import TrainingSettings, train_layer
from circuit_atlas.ingest.sae_circuits.sites import site_hooks

REPORT_FILE = "training.json"


@dataclass(frozen=True)
class SiteReport:
    hook: str
    d_features: int
    fraction_of_variance_explained: float
    mean_active_features: float
    dead_features: int


def site_activations(model: LoadedModel, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every site's activations, ``[n_positions, d_model]`` float32, all positions."""
    hooks = {hook for _, _, hook in site_hooks(model.n_layers, model.has_mlps)}
    with torch.no_grad():
        _, cache = model.model.run_with_cache(tokens, names_filter=lambda name: name in hooks)
    return {hook: cache[hook].reshape(-1, cache[hook].shape[-1]).float() for hook in hooks}


def train_site_saes(
    model: LoadedModel, tokens: torch.Tensor, settings: TrainingSettings
) -> tuple[dict[str, dict[str, torch.Tensor]], list[SiteReport]]:
    """An SAE per site (circuit-tracer's orientation: ``W_enc`` [d_features, d_model]) and its
    held-out report."""
    activations = site_activations(model, tokens)
    saes, reports = {}, []
    for index, (_, _, hook) in enumerate(site_hooks(model.n_layers, model.has_mlps)):
        x = activations[hook]
        order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(settings.seed))
        held = order[: x.shape[0] // 10]
        train = order[x.shape[0] // 10 :]
        tensors = train_layer(x[train], x[train], settings, index)
        acts = torch.relu(x[held] @ tensors["W_enc"].T + tensors["b_enc"])
        recon = acts @ tensors["W_dec"] + tensors["b_dec"]
        active = acts > 0
        reports.append(
            SiteReport(
                hook=hook,
                d_features=settings.d_features,
                fraction_of_variance_explained=fraction_of_variance_explained(x[held], recon),
                mean_active_features=float(active.sum(1).float().mean()),
                dead_features=int((~active.any(0)).sum()),
            )
        )
        saes[hook] = tensors
    return saes, reports


def save_saes(
    folder: Path,
    saes: dict[str, dict[str, torch.Tensor]],
    reports: list[SiteReport],
    settings: TrainingSettings,
) -> Path:
    """One SAELens folder per site (``W_enc`` stored [d_in, d_sae]) and ``training.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    dtype = getattr(torch, settings.dtype)
    for hook, tensors in saes.items():
        site = folder / hook
        site.mkdir(exist_ok=True)
        d_features, d_in = tensors["W_enc"].shape
        cfg = {"architecture": "standard", "d_in": d_in, "d_sae": d_features,
               "apply_b_dec_to_input": False, "normalize_activations": "none",
               "hook_name": hook}  # fmt: skip
        (site / "cfg.json").write_text(json.dumps(cfg, indent=1))
        weights = {
            "W_enc": tensors["W_enc"].T.contiguous().to(dtype),
            "W_dec": tensors["W_dec"].contiguous().to(dtype),
            "b_enc": tensors["b_enc"].to(dtype),
            "b_dec": tensors["b_dec"].to(dtype),
        }
        save_file(weights, str(site / "sae_weights.safetensors"))
    report = {"settings": asdict(settings), "sites": [asdict(r) for r in reports]}
    (folder / REPORT_FILE).write_text(json.dumps(report, indent=1))
    return folder


def shipped_saes() -> Path:
    """The SAEs trained for the shipped induction model (``circuit_atlas/data/saes``)."""
    return Path(str(resources.files("circuit_atlas") / "data" / "saes" / "induction_2l"))


INDUCTION_SETTINGS = TrainingSettings(
    d_features=128, steps=800, batch_size=512, learning_rate=3e-3, l1_coefficient=2e-2,
    dtype="float32",
)  # fmt: skip


def main() -> None:
    from circuit_atlas.ingest.attribution.model_adapter import load_model
    from circuit_atlas.ingest.attribution.toy_induction import repeated_sequences, weights_path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=shipped_saes())
    parser.add_argument("--sequences", type=int, default=2048)
    args = parser.parse_args()
    torch.manual_seed(INDUCTION_SETTINGS.seed)
    model = load_model(str(weights_path()))
    tokens, _ = repeated_sequences(args.sequences, torch.Generator().manual_seed(11))
    saes, reports = train_site_saes(model, tokens, INDUCTION_SETTINGS)
    save_saes(args.out, saes, reports, INDUCTION_SETTINGS)
    for report in reports:
        print(f"{report.hook:28} FVE {report.fraction_of_variance_explained:.3f}  "
              f"L0 {report.mean_active_features:.1f}  dead {report.dead_features}")  # fmt: skip


if __name__ == "__main__":
    main()
