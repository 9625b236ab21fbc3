"""Where the SAEs sit: the embedding, and each layer's attention output, MLP output and residual
stream, in the order the forward pass computes them.

A *site* is one TransformerLens hook whose activation is rebuilt from nodes: the features of its
SAE and its error term (activation − reconstruction), so the model computes exactly what it
computed before. A site without an SAE is one node, its error term: the whole activation
(``--saes`` may cover only some sites). The sites and the direct links between them::

    embed → attn_0, mlp_0, resid_0
    resid_{l-1} → attn_l → mlp_l → resid_l,   resid_{l-1} → mlp_l,   resid_{l-1} → resid_l

(``resid_{-1}`` is the embedding): attention reads the residual stream before its block, the MLP
reads it after attention (not with parallel attention and MLP), and the residual stream after the
block is the one before plus both outputs. Every node's value is a function of its site's direct
parents only, which is what makes edges between consecutive sites a complete decomposition.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from circuit_atlas.errors import DictionaryError
from circuit_atlas.ingest.attribution.model_adapter import LoadedModel
from circuit_atlas.ingest.features.dictionaries import SAELENS_CONFIG, Dictionary, load_sae

EMBED_HOOK = "blocks.0.hook_resid_pre"


@dataclass(frozen=True)
class Site:
    name: str  # "embed" | "attn" | "mlp" | "resid"
    layer: int | None  # None for the embedding
    hook: str
    sae: Dictionary | None

    @property
    def label(self) -> str:
        return self.name if self.layer is None else f"{self.name}_{self.layer}"

    @property
    def d_features(self) -> int:
        return 0 if self.sae is None else self.sae.d_features


def site_hooks(n_layers: int, has_mlps: bool = True) -> list[tuple[str, int | None, str]]:
    """``(name, layer, hook)`` of every site, in forward order (no MLP sites in an
    attention-only model)."""
    hooks: list[tuple[str, int | None, str]] = [("embed", None, EMBED_HOOK)]
    for layer in range(n_layers):
        hooks.append(("attn", layer, f"blocks.{layer}.hook_attn_out"))
        if has_mlps:
            hooks.append(("mlp", layer, f"blocks.{layer}.hook_mlp_out"))
        hooks.append(("resid", layer, f"blocks.{layer}.hook_resid_post"))
    return hooks


def parents(sites: list[Site], index: int) -> list[int]:
    """Indices of the sites whose nodes feed site ``index`` directly (see the module doc)."""
    site = sites[index]
    by_label = {s.label: i for i, s in enumerate(sites)}
    if site.name == "embed":
        return []
    layer = site.layer
    assert layer is not None
    before = "embed" if layer == 0 else f"resid_{layer - 1}"
    wanted = {
        "attn": [before],
        "mlp": [before, f"attn_{layer}"],
        "resid": [before, f"attn_{layer}", f"mlp_{layer}"],
    }[site.name]
    return [by_label[label] for label in wanted if label in by_label]


def load_saes(folder: str | Path) -> dict[str, Dictionary]:
    """SAEs by hook name from a folder of SAELens folders (one per site; a folder that is itself
    one SAE also works). Each must read and write one hook (an SAE, not a transcoder)."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise DictionaryError(f"{path}: expected a folder of SAEs (SAELens layout, one per site)")
    candidates = (
        [path]
        if (path / SAELENS_CONFIG).is_file()
        else sorted(p for p in path.iterdir() if (p / SAELENS_CONFIG).is_file())
    )
    if not candidates:
        raise DictionaryError(f"{path}: no SAE folders ({SAELENS_CONFIG} + weights) in it")
    saes: dict[str, Dictionary] = {}
    for child in candidates:
        sae = load_sae(child)
        if sae.input_hook != sae.output_hook:
            raise DictionaryError(
                f"{child}: reads {sae.input_hook} but writes {sae.output_hook}: a transcoder; "
                "feature circuits need SAEs (see --transcoders for transcoder graphs)"
            )
        if sae.input_hook in saes:
            raise DictionaryError(f"{child}: a second SAE for {sae.input_hook}")
        saes[sae.input_hook] = sae
    return saes


def build_sites(model: LoadedModel, saes: dict[str, Dictionary]) -> list[Site]:
    """Every site of ``model`` with its SAE where one is given; unknown hooks and size
    mismatches are errors before anything runs."""
    hooks = site_hooks(model.n_layers, model.has_mlps)
    known = {hook for _, _, hook in hooks}
    unknown = sorted(set(saes) - known)
    if unknown:
        raise DictionaryError(
            f"SAE hook(s) {', '.join(unknown)} are not sites of {model.name} ({model.n_layers} "
            "layers): use blocks.0.hook_resid_pre (the embedding), blocks.L.hook_attn_out, "
            "blocks.L.hook_mlp_out (models with MLPs) or blocks.L.hook_resid_post"
        )
    for hook, sae in saes.items():
        if sae.d_in != model.d_model or sae.d_out != model.d_model:
            raise DictionaryError(
                f"the SAE at {hook} has d_in={sae.d_in}, d_out={sae.d_out}; the model's d_model "
                f"is {model.d_model}"
            )
    device, dtype = model.device, model.dtype
    return [
        Site(name, layer, hook, saes[hook].to(dtype, device) if hook in saes else None)
        for name, layer, hook in hooks
    ]
