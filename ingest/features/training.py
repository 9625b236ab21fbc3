"""Train per-layer transcoders for a model, offline, and save them in circuit-tracer's layout.

The recipe behind ``circuit-atlas train-transcoders`` and the SmolLM2-135M transcoders the demo
ships. It is deliberately small — the goal is a real model's feature graph on a laptop CPU, not
state-of-the-art dictionaries — and every step is fixed by its settings and seed:

1. **Text** that is on every machine with this project installed: the docstrings of installed
   PyPI packages (numpy, pandas, scipy, click, pydantic, … read with ``ast``, never imported),
   or a text file the user gives. No download.
2. **Activations**: the text is tokenised, cut into ``seq_len``-token windows that start with
   the model's BOS token, and run through the model once; each layer's MLP input
   (``blocks.{l}.ln2.hook_normalized``) and output (``blocks.{l}.hook_mlp_out``) are kept for
   every position but the first (circuit-tracer gives position 0 no features).
3. **Training**, per layer: a ReLU transcoder ``y ≈ relu(x W_encᵀ + b_enc) W_dec + b_dec``
   minimising ``‖y − ŷ‖² / ‖y − ȳ‖² + λ · Σ_f a_f ‖W_dec[f]‖`` (normalised MSE plus a decoder-
   norm-weighted L1, as in Anthropic's and circuit-tracer's transcoders) with Adam; ``b_dec``
   starts at the mean output, ``W_dec`` at ``W_encᵀ``'s direction.
4. **Report**: each layer's fraction of variance explained and mean active features (L0) on a
   held-out tenth of the positions — what the demo prints, honestly, next to the graph's
   replacement score.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from circuit_atlas.errors import DictionaryError
from circuit_atlas.ingest.attribution.model_adapter import LoadedModel
from circuit_atlas.ingest.features.attribution import prompt_tokens
from circuit_atlas.ingest.features.dictionaries import fraction_of_variance_explained

INPUT_HOOK = "ln2.hook_normalized"
OUTPUT_HOOK = "hook_mlp_out"
TEXT_PACKAGES = ("numpy", "pandas", "scipy", "click", "pydantic", "networkx", "sklearn")
MIN_DOCSTRING_CHARS = 200
REPORT_FILE = "training.json"


@dataclass(frozen=True)
class TrainingSettings:
    d_features: int = 128
    n_tokens: int = 16_384  # training positions (a tenth more are held out)
    seq_len: int = 64
    steps: int = 1000
    batch_size: int = 1024
    learning_rate: float = 2e-3
    l1_coefficient: float = 1.5e-3
    seed: int = 0
    dtype: str = "float16"  # of the saved weights: halves the files the demo ships


@dataclass(frozen=True)
class LayerReport:
    layer: int
    fraction_of_variance_explained: float
    mean_active_features: float
    dead_features: int


def docstring_text(packages: tuple[str, ...] = TEXT_PACKAGES) -> Iterator[str]:
    """Docstrings of at least ``MIN_DOCSTRING_CHARS`` from the installed ``packages``' sources,
    in a fixed order (packages as given, files sorted). Sources are parsed, never imported."""
    for package in packages:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            for file in sorted(Path(root).rglob("*.py")):
                if "tests" in file.parts:
                    continue
                try:
                    tree = ast.parse(file.read_text(encoding="utf-8"))
                except (SyntaxError, UnicodeDecodeError, ValueError):
                    continue
                for node in ast.walk(tree):
                    if isinstance(
                        node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
                    ):
                        text = ast.get_docstring(node)
                        if text and len(text) >= MIN_DOCSTRING_CHARS:
                            yield text


def token_windows(
    model: LoadedModel, texts: Iterator[str], n_windows: int, seq_len: int
) -> torch.Tensor:
    """``[n_windows, seq_len]`` token ids: the texts' tokens, concatenated and cut into windows,
    each starting with the model's BOS token."""
    if model.tokenizer is None:
        raise DictionaryError(f"{model.name} has no tokenizer: training needs text")
    bos = prompt_tokens(model, "")[0]  # the BOS a prompt gets (prompt_tokens' own rule)
    body = seq_len - 1
    needed = n_windows * body
    ids: list[int] = []
    for text in texts:
        ids.extend(model.tokenizer(text + "\n\n", add_special_tokens=False)["input_ids"])
        if len(ids) >= needed:
            break
    if len(ids) < needed:
        raise DictionaryError(
            f"the text gives {len(ids):,} tokens; {needed:,} are needed (fewer --tokens?)"
        )
    windows = torch.tensor(ids[:needed], dtype=torch.long).view(n_windows, body)
    return torch.cat([torch.full((n_windows, 1), bos, dtype=torch.long), windows], 1)


def collect_activations(
    model: LoadedModel, windows: torch.Tensor, batch_size: int = 8, progress: bool = False
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per layer, MLP inputs and outputs ``[positions, d_model]`` (float16, position 0 of
    every window dropped)."""
    from tqdm.auto import tqdm

    n_layers = model.n_layers
    names = {f"blocks.{i}.{INPUT_HOOK}" for i in range(n_layers)}
    names |= {f"blocks.{i}.{OUTPUT_HOOK}" for i in range(n_layers)}
    inputs: list[list[torch.Tensor]] = [[] for _ in range(n_layers)]
    outputs: list[list[torch.Tensor]] = [[] for _ in range(n_layers)]
    batches = range(0, len(windows), batch_size)
    with torch.no_grad():
        for start in tqdm(batches, desc="activations", disable=not progress, unit="batch"):
            batch = windows[start : start + batch_size].to(model.device)
            _, cache = model.model.run_with_cache(
                batch, names_filter=lambda n: n in names, stop_at_layer=n_layers
            )  # no unembedding: a fifth of SmolLM2's forward pass
            for layer in range(n_layers):
                for store, hook in ((inputs, INPUT_HOOK), (outputs, OUTPUT_HOOK)):
                    acts = cache[f"blocks.{layer}.{hook}"][:, 1:]
                    store[layer].append(acts.reshape(-1, acts.shape[-1]).to("cpu", torch.float16))
    return [torch.cat(x) for x in inputs], [torch.cat(y) for y in outputs]


def train_layer(
    x: torch.Tensor, y: torch.Tensor, settings: TrainingSettings, layer: int
) -> dict[str, torch.Tensor]:
    """One ReLU transcoder from inputs ``x`` to outputs ``y`` (float32 tensors, in
    circuit-tracer's orientation); see the module docstring for the loss."""
    gen = torch.Generator().manual_seed(settings.seed * 1000 + layer)
    d_in, d_out, n = x.shape[1], y.shape[1], x.shape[0]
    w_enc = torch.randn(settings.d_features, d_in, generator=gen) / math.sqrt(d_in)
    params = {
        "W_enc": w_enc.clone().requires_grad_(),
        "b_enc": torch.zeros(settings.d_features, requires_grad=True),
        "W_dec": (
            0.1 * w_enc[:, :d_out].clone()
            if d_in == d_out
            else torch.randn(settings.d_features, d_out, generator=gen) / math.sqrt(d_out)
        ).requires_grad_(),  # fmt: skip
        "b_dec": y.mean(0).clone().requires_grad_(),
    }
    variance = ((y - y.mean(0)) ** 2).sum(1).mean()
    optimiser = torch.optim.Adam(params.values(), lr=settings.learning_rate)
    for step in range(settings.steps):
        rows = torch.randint(0, n, (settings.batch_size,), generator=gen)
        xb, yb = x[rows], y[rows]
        acts = torch.relu(xb @ params["W_enc"].T + params["b_enc"])
        recon = acts @ params["W_dec"] + params["b_dec"]
        mse = ((recon - yb) ** 2).sum(1).mean() / variance
        sparsity = (acts * params["W_dec"].norm(dim=1)).sum(1).mean()
        loss = mse + settings.l1_coefficient * sparsity
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        for group in optimiser.param_groups:  # cosine decay to a tenth
            group["lr"] = settings.learning_rate * (
                0.55 + 0.45 * math.cos(math.pi * (step + 1) / settings.steps)
            )
    return {name: p.detach() for name, p in params.items()}


def evaluate_layer(
    tensors: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor, layer: int
) -> LayerReport:
    acts = torch.relu(x @ tensors["W_enc"].T + tensors["b_enc"])
    recon = acts @ tensors["W_dec"] + tensors["b_dec"]
    active = acts > 0
    return LayerReport(
        layer=layer,
        fraction_of_variance_explained=fraction_of_variance_explained(y, recon),
        mean_active_features=float(active.sum(1).float().mean()),
        dead_features=int((~active.any(0)).sum()),
    )


def save_transcoders(
    folder: Path,
    layers: list[dict[str, torch.Tensor]],
    model_name: str,
    settings: TrainingSettings,
    reports: list[LayerReport],
) -> Path:
    """Write ``config.yaml``, ``layer_{i}.safetensors`` and the training report."""
    import yaml
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    dtype = getattr(torch, settings.dtype)
    for layer, tensors in enumerate(layers):
        save_file(
            {k: v.to(dtype).contiguous() for k, v in tensors.items()},
            str(folder / f"layer_{layer}.safetensors"),
        )
    config = {
        "model_kind": "transcoder_set",
        "model_name": model_name,
        "feature_input_hook": INPUT_HOOK,
        "feature_output_hook": OUTPUT_HOOK,
        "transcoders": [f"layer_{i}.safetensors" for i in range(len(layers))],
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    report = {
        "recipe": "circuit-atlas train-transcoders (ingest/features/training.py)",
        "model": model_name,
        "settings": asdict(settings),
        "text": f"docstrings of {', '.join(TEXT_PACKAGES)}",
        "layers": [asdict(r) for r in reports],
    }
    (folder / REPORT_FILE).write_text(json.dumps(report, indent=1) + "\n")
    return folder


def read_training_report(folder: Path) -> list[LayerReport] | None:
    """The per-layer report ``save_transcoders`` wrote, or ``None`` for other folders."""
    path = Path(folder) / REPORT_FILE
    if not path.is_file():
        return None
    return [LayerReport(**row) for row in json.loads(path.read_text())["layers"]]


def train_transcoders(
    model: LoadedModel,
    folder: Path,
    settings: TrainingSettings = TrainingSettings(),
    texts: Iterator[str] | None = None,
    progress: bool = False,
    windows: torch.Tensor | None = None,
) -> list[LayerReport]:
    """The whole recipe: text → activations → one transcoder per layer → files and report.
    ``windows`` (token ids ``[n, seq_len]``, BOS first) replaces the text, e.g. for a model
    without a tokenizer."""
    from tqdm.auto import tqdm

    held_out = max(1, settings.n_tokens // 10)
    per_window = settings.seq_len - 1
    n_windows = math.ceil((settings.n_tokens + held_out) / per_window)
    if windows is None:
        windows = token_windows(model, texts or docstring_text(), n_windows, settings.seq_len)
    inputs, outputs = collect_activations(model, windows, progress=progress)
    if len(inputs[0]) <= held_out:
        raise DictionaryError(f"{len(inputs[0])} positions leave nothing to train on")
    layers, reports = [], []
    for layer in tqdm(range(model.n_layers), desc="transcoders", disable=not progress):
        x, y = inputs[layer].float(), outputs[layer].float()
        train_x, train_y = x[:-held_out], y[:-held_out]
        tensors = train_layer(train_x, train_y, settings, layer)
        saved = {k: v.to(getattr(torch, settings.dtype)).float() for k, v in tensors.items()}
        reports.append(evaluate_layer(saved, x[-held_out:], y[-held_out:], layer))
        layers.append(tensors)
    save_transcoders(folder, layers, model.name, settings, reports)
    return reports
