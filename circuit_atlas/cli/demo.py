"""``circuit-atlas demo``: the main job on the zero-setup default (``circuit_atlas.demo``)."""

from __future__ import annotations

import click

from circuit_atlas.cli.options import StoreContext, pass_ctx


@click.command()
@click.option(
    "--model/--no-model",
    "with_model",
    default=True,
    show_default=True,
    help="Run the attribution jobs on SmolLM2 first (a few minutes on 2 cores).",
)
@click.option(
    "--features/--no-features",
    "with_features",
    default=True,
    show_default=True,
    help="With --model: also a feature graph through the project's own transcoders.",
)
@pass_ctx
def demo(state: StoreContext, with_model: bool, with_features: bool) -> None:
    """Run EAP-IG and a transcoder feature graph on a real model, ingest the bundled real
    graphs, and show what the store can answer about them."""
    from circuit_atlas.demo.attribution import load_demo_model, run_attribution_demo
    from circuit_atlas.demo.features import run_feature_attribution_demo
    from circuit_atlas.demo.tour import run_demo
    from circuit_atlas.local_server import default_data_dir

    data_dir = state.settings.data_dir or default_data_dir()
    attribution = features = None
    model = load_demo_model() if with_model else None
    if model is not None:
        attribution = run_attribution_demo(data_dir, model)
        if with_features:
            features = run_feature_attribution_demo(model)
        del model  # its memory, before the store's JVM starts
    run_demo(state.store(), attribution, features)
