"""``circuit-atlas train-transcoders``: per-layer transcoders for a model, trained offline on
text every install has (``ingest/features/training.py`` holds the recipe)."""

from __future__ import annotations

from pathlib import Path

import click

from circuit_atlas.cli.options import print_table
from circuit_atlas.progress import progress_enabled


@click.command("train-transcoders")
@click.option(
    "--model",
    "model_source",
    required=True,
    help="What `attribute --model` takes: a config .json, a {cfg, state_dict} .pt, GGUF, an "
    "HF folder, smollm2-135m, or a hub name.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for config.yaml, layer_<i>.safetensors and training.json (circuit-tracer's "
    "layout, which `attribute --transcoders` reads).",
)
@click.option(
    "--features", "d_features", type=click.IntRange(min=1), default=128, show_default=True
)
@click.option(
    "--tokens",
    "n_tokens",
    type=click.IntRange(min=64),
    default=16_384,
    show_default=True,
    help="Training positions (a tenth more are held out for the report).",
)
@click.option("--steps", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option(
    "--l1",
    "l1_coefficient",
    type=click.FloatRange(min=0.0),
    default=1.5e-3,
    show_default=True,
    help="Weight of the decoder-norm-weighted L1 penalty.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--text",
    "text_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Train on this UTF-8 text file instead of installed packages' docstrings.",
)
@click.option("--device", default="cpu", show_default=True)
def train_transcoders(
    model_source: str,
    out_dir: Path,
    d_features: int,
    n_tokens: int,
    steps: int,
    l1_coefficient: float,
    seed: int,
    text_file: Path | None,
    device: str,
) -> None:
    """Train one ReLU transcoder per layer (MLP input → MLP output) and report each layer's
    fraction of variance explained on held-out positions."""
    from circuit_atlas.ingest.attribution.model_adapter import check_device, load_model
    from circuit_atlas.ingest.attribution.preflight import check_model_source
    from circuit_atlas.ingest.features.training import TrainingSettings, train_transcoders

    check_model_source(model_source)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise click.UsageError(f"{out_dir} is not empty; give a new folder")
    texts = None
    if text_file is not None:
        try:
            texts = iter(text_file.read_text(encoding="utf-8").split("\n\n"))
        except UnicodeDecodeError as exc:
            raise click.BadParameter(f"{text_file} is not UTF-8 text ({exc.reason})") from None
    check_device(device)
    model = load_model(model_source, device=device)
    settings = TrainingSettings(
        d_features=d_features, n_tokens=n_tokens, steps=steps,
        l1_coefficient=l1_coefficient, seed=seed,
    )  # fmt: skip
    reports = train_transcoders(model, out_dir, settings, texts, progress=progress_enabled())
    import pandas as pd

    table = pd.DataFrame(
        {
            "layer": [r.layer for r in reports],
            "variance explained": [f"{r.fraction_of_variance_explained:.3f}" for r in reports],
            "mean active": [f"{r.mean_active_features:.1f}" for r in reports],
            "dead": [r.dead_features for r in reports],
        }
    )
    print_table(table, "table")
    click.echo(f"\nwrote {out_dir}; next: circuit-atlas attribute --model {model_source} "
               f"--transcoders {out_dir} --prompt '…'")  # fmt: skip
