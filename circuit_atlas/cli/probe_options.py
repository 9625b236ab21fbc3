"""``attribute --method subnetwork-probing``: the probe's options, and its settings from them.

Kept apart from ``cli/attribute.py`` so that command lists one decorator, not ten options; the
defaults are auto-circuit's (``ingest/attribution/subnetwork_probing.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from circuit_atlas.ingest.attribution.model_adapter import LoadedModel
    from circuit_atlas.ingest.attribution.subnetwork_probing import ProbeSettings

_OPTIONS = [
    click.option("--probe-epochs", type=click.IntRange(min=1), default=20, show_default=True,
                 help="subnetwork-probing: passes over the task."),
    click.option("--probe-lr", type=click.FloatRange(min=0, min_open=True), default=0.1,
                 show_default=True, help="subnetwork-probing: Adam's learning rate."),
    click.option("--probe-lambda", type=click.FloatRange(min=0), default=10.0, show_default=True,
                 help="subnetwork-probing: weight of the circuit-size penalty (0: none)."),
    click.option("--probe-circuit-size", type=click.IntRange(min=1),
                 help="subnetwork-probing: penalise only masks summing beyond this many edges."),
    click.option("--probe-init", type=float,
                 help="subnetwork-probing: initial mask logit (default: Cao et al.'s, 90% kept)."),
    click.option("--probe-dropout", type=click.FloatRange(min=0, max=1, max_open=True),
                 default=0.0, show_default=True,
                 help="subnetwork-probing: chance of zeroing each mask while training."),
    click.option("--probe-avoid", multiple=True, metavar="EDGE",
                 help="subnetwork-probing: an edge to keep out (e.g. 'a0.h1->a1.h0<q>'); repeat."),
    click.option("--probe-avoid-lambda", type=click.FloatRange(min=0), default=1.0,
                 show_default=True, help="subnetwork-probing: weight of the --probe-avoid term."),
    click.option("--probe-target", type=click.Choice(["kl", "metric"]), default="kl",
                 show_default=True,
                 help="subnetwork-probing: stay close to the clean run in KL divergence, or in the "
                 "task metric."),
    click.option("--probe-validation", type=click.Path(path_type=Path, dir_okay=False),
                 help="subnetwork-probing: a second task file, measured after every epoch."),
    click.option("--seed", type=int, default=0, show_default=True,
                 help="subnetwork-probing: seed of the mask samples."),
]  # fmt: skip


def probe_options(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def probe_settings(
    options: dict[str, Any], model: LoadedModel, corrupted_column: str
) -> ProbeSettings:
    """The probe's settings from the command's options (the validation task loaded here)."""
    from circuit_atlas.ingest.attribution.subnetwork_probing import INIT_LOGIT, ProbeSettings
    from circuit_atlas.ingest.attribution.tasks import load_task

    validation = options["probe_validation"]
    return ProbeSettings(
        learning_rate=options["probe_lr"],
        epochs=options["probe_epochs"],
        size_lambda=options["probe_lambda"],
        init_logit=INIT_LOGIT if options["probe_init"] is None else options["probe_init"],
        dropout=options["probe_dropout"],
        circuit_size=options["probe_circuit_size"],
        avoid_edges=tuple(options["probe_avoid"]),
        avoid_lambda=options["probe_avoid_lambda"],
        target=options["probe_target"],
        seed=options["seed"],
        validation=None
        if validation is None
        else load_task(validation, model, corrupted_column=corrupted_column),
    )
