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
    help="Run the attribution job on SmolLM2 first (about two minutes on 2 cores).",
)
@pass_ctx
def demo(state: StoreContext, with_model: bool) -> None:
    """Run EAP-IG on a real model, ingest the bundled real graphs, and show what the store
    can answer about both."""
    from circuit_atlas.demo.attribution import run_attribution_demo
    from circuit_atlas.demo.tour import run_demo
    from circuit_atlas.local_server import default_data_dir

    data_dir = state.settings.data_dir or default_data_dir()
    attribution = run_attribution_demo(data_dir) if with_model else None
    run_demo(state.store(), attribution)
