"""Small transcoder sets written to disk in circuit-tracer's and SAELens's layouts, for tests."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import yaml
from safetensors.torch import save_file

from circuit_atlas.ingest.attribution.model_adapter import LoadedModel


def write_circuit_tracer_set(
    folder: Path,
    tensors_per_layer: list[dict[str, torch.Tensor]],
    input_hook: str = "ln2.hook_normalized",
    output_hook: str = "hook_mlp_out",
    **config: object,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "model_kind": "transcoder_set",
        "feature_input_hook": input_hook,
        "feature_output_hook": output_hook,
        **config,
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(settings))
    for layer, tensors in enumerate(tensors_per_layer):
        save_file(
            {k: v.contiguous() for k, v in tensors.items()},
            str(folder / f"layer_{layer}.safetensors"),
        )
    return folder


def random_transcoders(
    model: LoadedModel,
    d_features: int = 32,
    seed: int = 0,
    jumprelu: bool = False,
    skip: bool = False,
) -> list[dict[str, torch.Tensor]]:
    """Random per-layer transcoders for ``model``, scaled so that about half the features fire."""
    gen = torch.Generator().manual_seed(seed)
    d = model.d_model
    layers = []
    for _ in range(model.n_layers):
        tensors = {
            "W_enc": torch.randn(d_features, d, generator=gen, dtype=torch.float64) / d**0.5,
            "W_dec": torch.randn(d_features, d, generator=gen, dtype=torch.float64) / d**0.5,
            "b_enc": 0.1 * torch.randn(d_features, generator=gen, dtype=torch.float64),
            "b_dec": 0.1 * torch.randn(d, generator=gen, dtype=torch.float64),
        }
        if jumprelu:
            tensors["activation_function.threshold"] = 0.2 * torch.rand(
                d_features, generator=gen, dtype=torch.float64
            )
        if skip:
            tensors["W_skip"] = 0.1 * torch.randn(d, d, generator=gen, dtype=torch.float64)
        layers.append(tensors)
    return layers


def random_clt(
    model: LoadedModel, d_features: int = 24, seed: int = 0, jumprelu: bool = False
) -> list[dict[str, torch.Tensor]]:
    """A random cross-layer transcoder for ``model``, per layer ``i`` the tensors of
    :func:`random_transcoders` but ``W_dec`` ``[d_features, n_layers − i, d_model]``."""
    gen = torch.Generator().manual_seed(seed)
    d, n = model.d_model, model.n_layers
    layers = random_transcoders(model, d_features, seed, jumprelu)
    for i, tensors in enumerate(layers):
        tensors["W_dec"] = torch.randn(d_features, n - i, d, generator=gen, dtype=torch.float64)
        tensors["W_dec"] /= d**0.5
    return layers


def write_clt(
    folder: Path,
    tensors_per_layer: list[dict[str, torch.Tensor]],
    input_hook: str = "hook_resid_mid",
    output_hook: str = "hook_mlp_out",
    subfolder: str | None = None,
) -> Path:
    """``tensors_per_layer`` (named as in :func:`random_clt`) in circuit-tracer's cross-layer
    layout: ``W_enc_{i}.safetensors`` and ``W_dec_{i}.safetensors`` beside ``config.yaml``, or
    in its ``subfolder``."""
    folder.mkdir(parents=True, exist_ok=True)
    settings: dict[str, object] = {
        "model_kind": "cross_layer_transcoder",
        "feature_input_hook": input_hook,
        "feature_output_hook": output_hook,
    }
    files = folder
    if subfolder is not None:
        settings["subfolder"] = subfolder
        files = folder / subfolder
        files.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(settings))
    for i, tensors in enumerate(tensors_per_layer):
        encoder = {
            f"W_enc_{i}": tensors["W_enc"],
            f"b_enc_{i}": tensors["b_enc"],
            f"b_dec_{i}": tensors["b_dec"],
        }
        if "activation_function.threshold" in tensors:
            encoder[f"threshold_{i}"] = tensors["activation_function.threshold"]
        save_file(
            {k: v.contiguous() for k, v in encoder.items()}, str(files / f"W_enc_{i}.safetensors")
        )
        save_file(
            {f"W_dec_{i}": tensors["W_dec"].contiguous()}, str(files / f"W_dec_{i}.safetensors")
        )
    return folder


def exact_transcoders(model: LoadedModel) -> list[dict[str, torch.Tensor]]:
    """Transcoders that *are* the MLPs of a ReLU model read at ``ln2.hook_normalized``: the
    encoder folds ln2's affine into ``W_in``, the decoder is ``W_out``; error is zero."""
    layers = []
    for block in model.model.blocks:
        w, b = block.ln2.w.detach(), block.ln2.b.detach()
        W_in, b_in = block.mlp.W_in.detach(), block.mlp.b_in.detach()  # [d_model, d_mlp]
        layers.append(
            {
                "W_enc": (w[:, None] * W_in).T,
                "b_enc": b @ W_in + b_in,
                "W_dec": block.mlp.W_out.detach(),  # [d_mlp, d_model]
                "b_dec": block.mlp.b_out.detach(),
            }
        )
    return layers


def write_saelens_sae(
    folder: Path, tensors: dict[str, torch.Tensor], hook_name: str, **cfg: object
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    d_in, d_sae = tensors["W_enc"].shape
    settings = {
        "architecture": "standard",
        "d_in": d_in,
        "d_sae": d_sae,
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "metadata": {"hook_name": hook_name},
        **cfg,
    }
    (folder / "cfg.json").write_text(json.dumps(settings))
    save_file(
        {k: v.contiguous() for k, v in tensors.items()}, str(folder / "sae_weights.safetensors")
    )
    return folder


SAE_SIZES = {"embed": 5, "attn": 6, "mlp": 10, "resid": 8}  # unequal: no index can be swapped


def random_site_saes(
    model: LoadedModel, seed: int = 0, sizes: dict[str, int] | None = None
) -> dict[str, dict[str, torch.Tensor]]:
    """SAELens-layout tensors (``W_enc`` [d_in, d_sae]) for every feature-circuit site of
    ``model`` by hook name, sized per site kind, scaled so that most features fire."""
    from circuit_atlas.ingest.sae_circuits.sites import site_hooks

    sizes = sizes or SAE_SIZES
    gen = torch.Generator().manual_seed(seed)
    d = model.d_model
    out = {}
    for name, _, hook in site_hooks(model.n_layers):
        f = sizes[name]
        out[hook] = {
            "W_enc": torch.randn(d, f, generator=gen, dtype=torch.float64) / d**0.5,
            "W_dec": torch.randn(f, d, generator=gen, dtype=torch.float64) / f**0.5,
            "b_enc": 0.2 * torch.rand(f, generator=gen, dtype=torch.float64),
            "b_dec": 0.1 * torch.randn(d, generator=gen, dtype=torch.float64),
        }
    return out


def write_site_saes(folder: Path, saes: dict[str, dict[str, torch.Tensor]]) -> Path:
    """One SAELens folder per site (``blocks.0.hook_attn_out`` → ``blocks.0.hook_attn_out/``)."""
    for hook, tensors in saes.items():
        write_saelens_sae(folder / hook, tensors, hook)
    return folder
