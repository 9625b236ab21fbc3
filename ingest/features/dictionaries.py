"""Per-layer transcoders and SAEs from disk: one validated loader for two layouts.

A *dictionary* reads a model activation at one hook, encodes it into sparse features and decodes
them into the activation at another hook (a transcoder: MLP input → MLP output) or the same
hook (an SAE). Both layouts hold tensors only (safetensors, YAML read with ``safe_load``, JSON):
no file can run code.

**circuit-tracer** (0.5.0), a folder with ``config.yaml``::

    model_kind: transcoder_set            # or cross_layer_transcoder (below)
    feature_input_hook: ln2.hook_normalized   # relative to blocks.{layer}
    feature_output_hook: hook_mlp_out
    transcoders: [layer_0.safetensors, …] # optional; local paths, index = layer
    model_name: …                          # optional

and ``layer_{i}.safetensors`` holding ``W_enc`` [d_transcoder, d_model], ``W_dec``
[d_transcoder, d_model], ``b_enc`` [d_transcoder], ``b_dec`` [d_model], and optionally
``W_skip`` [d_model, d_model] and ``activation_function.threshold`` [d_transcoder] (JumpReLU,
``pre * (pre > threshold)``). Encoding is ``act(x @ W_enc.T + b_enc)``; decoding
``a @ W_dec + b_dec (+ x @ W_skip.T)`` — circuit-tracer's ``SingleLayerTranscoder``.

A **cross-layer transcoder** (``model_kind: cross_layer_transcoder``, circuit-tracer's
``load_clt`` layout; files in the folder or in its ``subfolder``) holds, per layer ``i`` of ``n``,
``W_enc_{i}.safetensors`` with ``W_enc_{i}`` [d_transcoder, d_model], ``b_enc_{i}``, ``b_dec_{i}``
and optionally ``threshold_{i}``, and ``W_dec_{i}.safetensors`` with ``W_dec_{i}``
[d_transcoder, n − i, d_model]: a feature read at layer ``i`` writes into the MLP outputs of
layers ``i … n−1``, and layer ``l``'s output is ``b_dec_l`` plus every such write into it.

**SAELens** (5.x and 6.x), a folder with ``cfg.json`` and ``sae_weights.safetensors``
(``W_enc`` [d_in, d_sae], ``W_dec`` [d_sae, d_out], ``b_enc``, ``b_dec``, ``threshold`` for
``jumprelu``), or a folder of such folders, one per layer. ``apply_b_dec_to_input`` is folded
into ``b_enc`` (exact); normalised activations and architectures other than ``standard`` and
``jumprelu`` are refused by name.

Hub repositories are fetched only on machines with hub access (``HF_HUB_OFFLINE`` unset).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from circuit_atlas.errors import DictionaryError

CT_CONFIG = "config.yaml"
SAELENS_CONFIG = "cfg.json"
SAELENS_WEIGHTS = "sae_weights.safetensors"
CT_KEYS = {"W_enc", "W_dec", "b_enc", "b_dec"}
CT_OPTIONAL = {"W_skip", "activation_function.threshold"}
SAELENS_KEYS = {"W_enc", "W_dec", "b_enc", "b_dec"}
ACTIVATIONS = ("relu", "jumprelu")
_LAYER_IN_HOOK = re.compile(r"^blocks\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class Dictionary:
    """One layer's transcoder or SAE, in circuit-tracer's orientation."""

    layer: int
    input_hook: str  # full TransformerLens hook name, e.g. blocks.3.ln2.hook_normalized
    output_hook: str  # e.g. blocks.3.hook_mlp_out (an SAE: the input hook)
    W_enc: torch.Tensor  # [d_features, d_in]
    W_dec: torch.Tensor  # [d_features, d_out]; cross-layer: [d_features, n_layers − layer, d_out]
    b_enc: torch.Tensor  # [d_features]
    b_dec: torch.Tensor  # [d_out]
    threshold: torch.Tensor | None = None  # JumpReLU: a feature is on where pre > threshold
    W_skip: torch.Tensor | None = None  # [d_out, d_in]: a linear path beside the features

    @property
    def d_features(self) -> int:
        return int(self.W_enc.shape[0])

    @property
    def d_in(self) -> int:
        return int(self.W_enc.shape[1])

    @property
    def d_out(self) -> int:
        return int(self.W_dec.shape[-1])

    @property
    def cross_layer(self) -> bool:
        """Whether its features write into this layer's output and every later one's."""
        return self.W_dec.ndim == 3

    @property
    def output_layers(self) -> range:
        """The layers whose MLP outputs these features write into."""
        return range(self.layer, self.layer + (self.W_dec.shape[1] if self.cross_layer else 1))

    def decoder_to(self, layer: int) -> torch.Tensor:
        """``[d_features, d_out]``: what each feature, at activation 1, writes into ``layer``."""
        if layer not in self.output_layers:
            raise DictionaryError(f"layer {self.layer}'s features do not write into layer {layer}")
        return self.W_dec[:, layer - self.layer] if self.cross_layer else self.W_dec

    @property
    def activation(self) -> str:
        return "jumprelu" if self.threshold is not None else "relu"

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.W_enc.T + self.b_enc

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        """ReLU, or JumpReLU with a strict ``>`` (circuit-tracer's convention)."""
        if self.threshold is None:
            return torch.relu(pre)
        return pre * (pre > self.threshold)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.pre_activations(x))

    def decode(self, acts: torch.Tensor, x: torch.Tensor | None = None) -> torch.Tensor:
        """This layer's reconstruction from its own features (per-layer transcoders and SAEs;
        a cross-layer transcoder's layer output needs every earlier layer: see
        :meth:`DictionarySet.reconstruct`)."""
        if self.cross_layer:
            raise DictionaryError(
                "a cross-layer transcoder's output needs every earlier layer's features; use "
                "DictionarySet.reconstruct"
            )
        out = acts @ self.W_dec + self.b_dec
        if self.W_skip is not None:
            if x is None:
                raise DictionaryError("a transcoder with W_skip decodes from its input too")
            out = out + x @ self.W_skip.T
        return out

    def to(self, dtype: torch.dtype, device: torch.device | str = "cpu") -> Dictionary:
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device=device, dtype=dtype)

        return replace(
            self,
            W_enc=self.W_enc.to(device=device, dtype=dtype),
            W_dec=self.W_dec.to(device=device, dtype=dtype),
            b_enc=self.b_enc.to(device=device, dtype=dtype),
            b_dec=self.b_dec.to(device=device, dtype=dtype),
            threshold=move(self.threshold),
            W_skip=move(self.W_skip),
        )


@dataclass(frozen=True)
class DictionarySet:
    """Dictionaries for layers 0..n-1 of one model, and where they came from."""

    layers: tuple[Dictionary, ...]
    source: str
    kind: str  # "transcoder" (input hook ≠ output hook) or "sae"
    model_name: str | None = None

    @property
    def n_layers(self) -> int:
        return len(self.layers)

    @property
    def d_features(self) -> int:
        return max(d.d_features for d in self.layers)

    @property
    def cross_layer(self) -> bool:
        return any(d.cross_layer for d in self.layers)

    def reconstruct(
        self, activations: list[torch.Tensor], inputs: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """Each layer's output as the dictionaries rebuild it from per-layer feature
        activations ``[n_pos, d_features]`` (and the inputs, for skip connections): its
        ``b_dec``, its skip term, and every write into it, from its own features or, for a
        cross-layer transcoder, from any earlier layer's."""
        outputs = []
        for d in self.layers:
            out = d.b_dec.expand(activations[d.layer].shape[0], -1).clone()
            if d.W_skip is not None:
                out = out + inputs[d.layer] @ d.W_skip.T
            outputs.append(out)
        for d in self.layers:
            for target in d.output_layers:
                outputs[target] = outputs[target] + activations[d.layer] @ d.decoder_to(target)
        return outputs

    def to(self, dtype: torch.dtype, device: torch.device | str = "cpu") -> DictionarySet:
        return replace(self, layers=tuple(d.to(dtype, device) for d in self.layers))

    def check_fits(self, hook_names: set[str], n_layers: int, d_model: int) -> None:
        """One clear error if these dictionaries cannot run on a model with these hooks and
        sizes (checked before any attribution work)."""
        if self.n_layers != n_layers:
            raise DictionaryError(
                f"{self.source}: {self.n_layers} layer(s) of dictionaries for a model with "
                f"{n_layers} layers; a transcoder set needs one per layer"
            )
        for d in self.layers:
            for hook in (d.input_hook, d.output_hook):
                if hook not in hook_names:
                    raise DictionaryError(
                        f"{self.source}: layer {d.layer} reads or writes hook {hook!r}, which "
                        "the model does not have"
                    )
            if d.d_in != d_model or d.d_out != d_model:
                raise DictionaryError(
                    f"{self.source}: layer {d.layer} maps d_in={d.d_in} to d_out={d.d_out}, but "
                    f"the model's width is {d_model}"
                )


def load_dictionaries(source: str | Path) -> DictionarySet:
    """Dictionaries from a folder in either layout, or a hub repository on machines with access.

    Raises :class:`DictionaryError` naming the file and what is wrong with it.
    """
    path = Path(source).expanduser()
    if not path.exists():
        path = _from_hub(str(source))
    if not path.is_dir():
        raise DictionaryError(f"{path}: expected a folder of transcoder or SAE weights")
    if (path / CT_CONFIG).is_file():
        return _load_circuit_tracer(path)
    if (path / SAELENS_CONFIG).is_file():
        return _set_of([_load_saelens(path)], str(path))
    children = sorted(p for p in path.iterdir() if (p / SAELENS_CONFIG).is_file())
    if children:
        return _set_of([_load_saelens(child) for child in children], str(path))
    raise DictionaryError(
        f"{path}: neither circuit-tracer's layout ({CT_CONFIG} + layer_<i>.safetensors) nor "
        f"SAELens's ({SAELENS_CONFIG} + {SAELENS_WEIGHTS}, or one such folder per layer)"
    )


# --------------------------------------------------------------------------- circuit-tracer
def _load_circuit_tracer(folder: Path) -> DictionarySet:
    import yaml

    config_path = folder / CT_CONFIG
    config = _read_settings(config_path, yaml.safe_load, yaml.YAMLError, "YAML")
    kind = config.get("model_kind", "transcoder_set")
    if kind not in ("transcoder_set", "cross_layer_transcoder"):
        raise DictionaryError(
            f"{config_path}: unknown model_kind {kind!r} (transcoder_set or cross_layer_transcoder)"
        )
    hooks = {}
    for key in ("feature_input_hook", "feature_output_hook"):
        value = config.get(key)
        if not isinstance(value, str) or not value:
            raise DictionaryError(f"{config_path}: {key} is missing (e.g. hook_mlp_out)")
        hooks[key] = value
    model_name = config.get("model_name")
    model_name = model_name if isinstance(model_name, str) else None
    if kind == "cross_layer_transcoder":
        return _set_of(_load_clt(folder, config, config_path, hooks), str(folder), model_name)
    files = _layer_files(folder, config, config_path)
    layers = []
    for layer, file in enumerate(files):
        tensors = _read_safetensors(file)
        unknown = set(tensors) - CT_KEYS - CT_OPTIONAL
        missing = CT_KEYS - set(tensors)
        if missing or unknown:
            raise DictionaryError(
                f"{file}: "
                + "; ".join(
                    part
                    for part in (
                        f"missing {sorted(missing)}" if missing else "",
                        f"unexpected {sorted(unknown)}" if unknown else "",
                    )
                    if part
                )
                + f" (a circuit-tracer transcoder holds {sorted(CT_KEYS)} and optionally "
                f"{sorted(CT_OPTIONAL)})"
            )
        layers.append(
            _checked(
                Dictionary(
                    layer=layer,
                    input_hook=f"blocks.{layer}.{hooks['feature_input_hook']}",
                    output_hook=f"blocks.{layer}.{hooks['feature_output_hook']}",
                    W_enc=tensors["W_enc"],
                    W_dec=tensors["W_dec"],
                    b_enc=tensors["b_enc"],
                    b_dec=tensors["b_dec"],
                    threshold=tensors.get("activation_function.threshold"),
                    W_skip=tensors.get("W_skip"),
                ),
                file,
            )
        )
    return _set_of(layers, str(folder), model_name)


def _load_clt(
    folder: Path, config: dict[str, Any], config_path: Path, hooks: dict[str, str]
) -> list[Dictionary]:
    """A cross-layer transcoder in circuit-tracer's ``load_clt`` layout: one encoder file and
    one decoder file per layer, each checked by name and shape."""
    subfolder = config.get("subfolder")
    if subfolder is not None:
        if not isinstance(subfolder, str) or Path(subfolder).is_absolute() or ".." in subfolder:
            raise DictionaryError(f"{config_path}: subfolder must be a relative folder name")
        folder = folder / subfolder
    found = {}
    for file in folder.glob("W_enc_*.safetensors"):
        match = re.fullmatch(r"W_enc_(\d+)\.safetensors", file.name)
        if match:
            found[int(match.group(1))] = file
    if not found:
        raise DictionaryError(f"{folder}: no W_enc_<i>.safetensors files (cross-layer layout)")
    n_layers = max(found) + 1
    missing = sorted(set(range(n_layers)) - set(found))
    if missing:
        raise DictionaryError(f"{folder}: W_enc file(s) missing for layer(s) {missing}")
    layers = []
    for layer in range(n_layers):
        encoder = _read_safetensors(found[layer])
        decoder_file = folder / f"W_dec_{layer}.safetensors"
        decoder = _read_safetensors(decoder_file)
        required = {f"W_enc_{layer}", f"b_enc_{layer}", f"b_dec_{layer}"}
        expected_keys = {
            found[layer]: (encoder, required, {f"threshold_{layer}"}),
            decoder_file: (decoder, {f"W_dec_{layer}"}, set()),
        }
        for file, (tensors, needed, optional) in expected_keys.items():
            missing_keys, unknown = needed - set(tensors), set(tensors) - needed - optional
            if missing_keys or unknown:
                raise DictionaryError(
                    f"{file}: expected {sorted(needed)}"
                    + (f" and optionally {sorted(optional)}" if optional else "")
                    + f", found {sorted(tensors)}"
                )
        W_dec = decoder[f"W_dec_{layer}"]
        if W_dec.ndim != 3 or W_dec.shape[1] != n_layers - layer:
            raise DictionaryError(
                f"{decoder_file}: W_dec_{layer} has shape {tuple(W_dec.shape)}, expected "
                f"[d_transcoder, {n_layers - layer}, d_model] (layer {layer} of {n_layers} "
                "writes into every later layer)"
            )
        layers.append(
            _checked(
                Dictionary(
                    layer=layer,
                    input_hook=f"blocks.{layer}.{hooks['feature_input_hook']}",
                    output_hook=f"blocks.{layer}.{hooks['feature_output_hook']}",
                    W_enc=encoder[f"W_enc_{layer}"],
                    W_dec=W_dec,
                    b_enc=encoder[f"b_enc_{layer}"],
                    b_dec=encoder[f"b_dec_{layer}"],
                    threshold=encoder.get(f"threshold_{layer}"),
                ),
                found[layer],
            )
        )
    return layers


def _layer_files(folder: Path, config: dict[str, Any], config_path: Path) -> list[Path]:
    listed = config.get("transcoders")
    if listed is None:
        found = {}
        for file in folder.glob("layer_*.safetensors"):
            match = re.fullmatch(r"layer_(\d+)\.safetensors", file.name)
            if match:
                found[int(match.group(1))] = file
        if not found:
            raise DictionaryError(f"{folder}: no layer_<i>.safetensors files")
        missing = sorted(set(range(max(found) + 1)) - set(found))
        if missing:
            raise DictionaryError(f"{folder}: layer file(s) missing for layer(s) {missing}")
        return [found[i] for i in range(len(found))]
    if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
        raise DictionaryError(f"{config_path}: transcoders must be a list of file paths")
    files = []
    for entry in listed:
        if entry.startswith("hf://"):
            raise DictionaryError(
                f"{config_path}: {entry} is a hub address; download the files and list local "
                "paths (nothing is downloaded while loading)"
            )
        file = (folder / entry).resolve()
        if not file.is_file():
            raise DictionaryError(f"{config_path}: listed file {entry} does not exist")
        files.append(file)
    return files


# --------------------------------------------------------------------------- SAELens
def load_sae(folder: Path) -> Dictionary:
    """One SAE in SAELens's layout (``cfg.json`` + ``sae_weights.safetensors``), validated."""
    return _load_saelens(folder)


def _load_saelens(folder: Path) -> Dictionary:
    cfg_path = folder / SAELENS_CONFIG
    cfg = _read_settings(cfg_path, json.loads, json.JSONDecodeError, "JSON")
    raw_metadata = cfg.get("metadata")
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    architecture = cfg.get("architecture", "standard")
    if architecture not in ("standard", "jumprelu"):
        raise DictionaryError(
            f"{cfg_path}: architecture {architecture!r} is not supported (standard and jumprelu "
            "are)"
        )
    normalize = cfg.get("normalize_activations", "none")
    if normalize not in (None, "none"):
        raise DictionaryError(
            f"{cfg_path}: normalize_activations={normalize!r} rescales inputs by a statistic "
            "the files do not hold; only 'none' is supported"
        )
    hook_in = cfg.get("hook_name") or metadata.get("hook_name")
    if not isinstance(hook_in, str):
        raise DictionaryError(f"{cfg_path}: hook_name is missing")
    hook_out = cfg.get("hook_name_out") or metadata.get("hook_name_out") or hook_in
    match = _LAYER_IN_HOOK.match(hook_in)
    if not match:
        raise DictionaryError(
            f"{cfg_path}: hook {hook_in!r} is not inside a block (blocks.<layer>.…)"
        )
    weights = folder / SAELENS_WEIGHTS
    tensors = _read_safetensors(weights)
    missing = SAELENS_KEYS - set(tensors)
    if missing:
        raise DictionaryError(f"{weights}: missing {sorted(missing)}")
    if architecture == "jumprelu" and "threshold" not in tensors:
        raise DictionaryError(f"{weights}: a jumprelu SAE needs 'threshold'")
    W_enc = tensors["W_enc"]
    if W_enc.ndim != 2:
        raise DictionaryError(f"{weights}: W_enc must be a matrix, got shape {tuple(W_enc.shape)}")
    W_enc = W_enc.T.contiguous()  # SAELens stores [d_in, d_sae]
    b_enc = tensors["b_enc"]
    if cfg.get("apply_b_dec_to_input", False):
        # (x - b_dec) @ W_enc.T + b_enc = x @ W_enc.T + (b_enc - W_enc @ b_dec): exact
        if tensors["b_dec"].shape != (W_enc.shape[1],):
            raise DictionaryError(f"{weights}: apply_b_dec_to_input needs d_out = d_in")
        b_enc = b_enc - W_enc @ tensors["b_dec"]
    return _checked(
        Dictionary(
            layer=int(match.group(1)),
            input_hook=hook_in,
            output_hook=hook_out,
            W_enc=W_enc,
            W_dec=tensors["W_dec"],
            b_enc=b_enc,
            b_dec=tensors["b_dec"],
            threshold=tensors.get("threshold"),
        ),
        weights,
    )


# --------------------------------------------------------------------------- shared
def _read_settings(
    path: Path, parse: Any, errors: type[Exception], language: str
) -> dict[str, Any]:
    """A settings file parsed by ``parse`` (YAML ``safe_load`` or ``json.loads``): a mapping,
    or one error naming the file."""
    try:
        settings = parse(path.read_text())
    except (errors, UnicodeDecodeError) as exc:
        raise DictionaryError(f"{path}: not valid {language} ({exc})") from None
    if not isinstance(settings, dict):
        raise DictionaryError(f"{path}: expected a {language} mapping of settings")
    return settings


def _read_safetensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not file.is_file():
        raise DictionaryError(f"{file}: no such file")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise DictionaryError(f"{file}: not a readable safetensors file ({exc})") from None


def _checked(d: Dictionary, file: Path) -> Dictionary:
    """Shapes that agree with each other, and finite numbers (a NaN would spread through every
    edge of the graph)."""
    f, d_in = d.W_enc.shape if d.W_enc.ndim == 2 else (None, None)
    decoder_ok = d.W_dec.ndim == 2 or (d.W_dec.ndim == 3 and d.W_dec.shape[1] > 0)
    d_out = d.W_dec.shape[-1] if decoder_ok else None
    writes = tuple(d.W_dec.shape[1:-1]) if decoder_ok else ()
    expected: dict[str, tuple[Any, ...]] = {
        "W_enc": (f, d_in),
        "W_dec": (f, *writes, d_out),
        "b_enc": (f,),
        "b_dec": (d_out,),
    }
    tensors: dict[str, torch.Tensor | None] = {
        "W_enc": d.W_enc,
        "W_dec": d.W_dec,
        "b_enc": d.b_enc,
        "b_dec": d.b_dec,
        "threshold": d.threshold,
        "W_skip": d.W_skip,
    }
    if d.threshold is not None:
        expected["threshold"] = (f,)
    if d.W_skip is not None:
        expected["W_skip"] = (expected["b_dec"][0], d_in)
    for name, shape in expected.items():
        tensor = tensors[name]
        assert tensor is not None
        if None in shape or tuple(tensor.shape) != shape:
            raise DictionaryError(
                f"{file}: {name} has shape {tuple(tensor.shape)}, expected {shape} "
                "(W_enc [d_features, d_in] after loading)"
            )
        if not tensor.is_floating_point():
            raise DictionaryError(f"{file}: {name} holds {tensor.dtype}, expected floats")
        if not bool(torch.isfinite(tensor).all()):
            raise DictionaryError(f"{file}: {name} holds NaN or infinite values")
    return d


def _set_of(layers: list[Dictionary], source: str, model_name: str | None = None) -> DictionarySet:
    layers = sorted(layers, key=lambda d: d.layer)
    numbers = [d.layer for d in layers]
    if numbers != list(range(len(layers))):
        raise DictionaryError(
            f"{source}: dictionaries for layers {numbers}; expected each of 0..{len(layers) - 1} "
            "once"
        )
    kind = "sae" if all(d.input_hook == d.output_hook for d in layers) else "transcoder"
    return DictionarySet(tuple(layers), source, kind, model_name)


def _from_hub(name: str) -> Path:
    """A hub repository's snapshot, where the hub is reachable; else a clear error."""
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        raise DictionaryError(f"{name}: no such folder")
    import os

    if os.environ.get("HF_HUB_OFFLINE") not in (None, "", "0"):
        raise DictionaryError(
            f"{name}: no such folder, and HF_HUB_OFFLINE is set so the hub is not asked; pass "
            "a folder of transcoder or SAE weights"
        )
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, allow_patterns=["*.yaml", "*.json", "*.safetensors"]))
    except Exception as exc:  # no network, unknown repository, refused
        raise DictionaryError(
            f"{name}: not a folder, and the hub did not provide it ({exc})"
        ) from None


def fraction_of_variance_explained(target: torch.Tensor, reconstruction: torch.Tensor) -> float:
    """1 − ‖target − reconstruction‖² / ‖target − mean‖², over positions (rows)."""
    residual = float(((target - reconstruction) ** 2).sum())
    total = float(((target - target.mean(0)) ** 2).sum())
    return math.nan if total == 0 else 1.0 - residual / total
