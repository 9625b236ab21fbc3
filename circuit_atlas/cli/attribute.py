"""``circuit-atlas attribute``: run an attribution job and store/export its graph."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from circuit_atlas.cli.options import (
    LazyChoice,
    StoreContext,
    format_option,
    pass_ctx,
    print_table,
)
from circuit_atlas.cli.probe_options import probe_options, probe_settings
from circuit_atlas.progress import progress_enabled

if TYPE_CHECKING:
    import pandas as pd


SAE_METHOD = "sae-feature-circuit"


def _methods() -> list[str]:
    from circuit_atlas.ingest.attribution.methods import ALL_METHODS

    return sorted([*ALL_METHODS, SAE_METHOD])


def _metrics() -> list[str]:
    from circuit_atlas.ingest.attribution.metrics import METRICS

    return sorted(METRICS)


def _interventions() -> tuple[str, ...]:
    from circuit_atlas.ingest.attribution.methods import INTERVENTIONS

    return INTERVENTIONS


def _aggregations() -> tuple[str, ...]:
    from circuit_atlas.ingest.attribution.methods import AGGREGATIONS

    return AGGREGATIONS


def _selections() -> tuple[str, ...]:
    from circuit_atlas.ingest.attribution.circuit import SELECTIONS

    return SELECTIONS


def _devices() -> tuple[str, ...]:
    from circuit_atlas.ingest.attribution.model_adapter import DEVICES

    return DEVICES


def _dtypes() -> list[str]:
    from circuit_atlas.ingest.attribution.model_adapter import DTYPES

    return sorted(DTYPES)


def default_graph_id(model: str, task: Path, method: str) -> str:
    stem = Path(model).stem if Path(model).suffix else Path(model).name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{stem}-{task.stem}-{method}")


@click.command()
@click.option(
    "--model",
    "model_source",
    required=True,
    help="Config .json, weights .pt, .gguf, Hugging Face folder, 'smollm2-135m', or a hub name.",
)
@click.option(
    "--task",
    "task_path",
    type=click.Path(path_type=Path),
    help="Clean/corrupted pairs (CSV or JSONL): a component graph.",
)
@click.option(
    "--transcoders",
    type=click.Path(path_type=Path),
    help="Per-layer transcoders (circuit-tracer's layout): a feature graph of one prompt.",
)
@click.option(
    "--saes",
    type=click.Path(path_type=Path),
    help="With --task and --method sae-feature-circuit: SAEs (SAELens layout, one folder per "
    "site: blocks.0.hook_resid_pre, blocks.L.hook_attn_out / hook_mlp_out / hook_resid_post).",
)
@click.option(
    "--positions",
    type=click.Choice(["sum", "each"]),
    default="sum",
    show_default=True,
    help="sae-feature-circuit: nodes summed over positions, or one per position (templated tasks).",
)
@click.option(
    "--min-node-effect",
    "--node-threshold",  # feature-circuits' name; score/prune's --node-threshold is a share
    "node_threshold",
    type=click.FloatRange(min=0),
    default=0.1,
    show_default=True,
    help="sae-feature-circuit: keep nodes whose |effect| reaches this (an absolute effect, not "
    "the cumulative share score and prune take).",
)
@click.option(
    "--min-edge-effect",
    "--edge-threshold",
    "edge_threshold",
    type=click.FloatRange(min=0),
    default=0.01,
    show_default=True,
    help="sae-feature-circuit: keep edges whose |effect| reaches this.",
)
@click.option("--prompt", help="With --transcoders: the prompt text (a BOS token is put first).")
@click.option("--tokens", help="With --transcoders: the prompt as token ids, e.g. '1,7,3'.")
@click.option(
    "--max-feature-nodes",
    type=click.IntRange(min=1),
    help="With --transcoders: keep the N features most influential on the logits (default: all).",
)
@click.option("--max-n-logits", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--desired-logit-prob",
    type=click.FloatRange(min=0, max=1, min_open=True),
    default=0.95,
    show_default=True,
    help="With --transcoders: logit nodes until their probability reaches this.",
)
@click.option("--method", type=LazyChoice(_methods), default="eap-ig-inputs", show_default=True)
@click.option("--metric", type=LazyChoice(_metrics), help="Default: what the task format implies.")
@click.option(
    "--intervention", type=LazyChoice(_interventions), default="patching", show_default=True
)
@click.option("--ig-steps", type=click.IntRange(min=1), default=5, show_default=True)
@click.option(
    "--ig-rule",
    type=click.Choice(["left", "right", "midpoint"]),
    help="Integrated-gradients points α: left k/m, right (k+1)/m (one step = EAP), midpoint "
    "(k+½)/m (converges fastest). Default: the reference's (hannamw/EAP-IG, so MIB's numbers): "
    "left, but right for eap-ig-activations.",
)
@click.option(
    "--neurons",
    is_flag=True,
    help="Also score every node's output dimensions (EAP-IG's neuron level), stored as node "
    "properties neuron_scores and node_score (gradient methods).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--aggregate", type=LazyChoice(_aggregations), default="sum", show_default=True)
@click.option("--corrupted-column", default="corrupted", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="Use the first N pairs only.")
@click.option(
    "--select", "selection", type=LazyChoice(_selections), default="topn", show_default=True
)
@click.option(
    "--edges",
    "amount",
    type=float,
    help="Circuit size (topn/greedy: edges; threshold: |score|). Default: 1% of edges.",
)
@click.option(
    "--curve/--no-curve",
    default=True,
    show_default=True,
    help="Faithfulness curve, CPR and CMD (10 more patched runs per batch).",
)
@click.option("--device", type=LazyChoice(_devices), default="cpu", show_default=True)
@click.option("--dtype", type=LazyChoice(_dtypes), default="float32", show_default=True)
@click.option("--store/--no-store", "to_store", default=True, show_default=True)
@click.option("--graph-id", help="Stored graph id (default: MODEL-TASK-METHOD).")
@click.option("--replace", is_flag=True, help="Replace a stored graph of the same id.")
@click.option(
    "--out",
    "out_json",
    type=click.Path(path_type=Path),
    help="Also write EAP-IG-compatible JSON here.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(path_type=Path),
    help="Faithfulness-curve PNG (default: <data-dir>/reports/<graph-id>-faithfulness.png).",
)
@probe_options
@format_option
@pass_ctx
def attribute(
    state: StoreContext,
    model_source: str,
    task_path: Path | None,
    transcoders: Path | None,
    saes: Path | None,
    positions: str,
    node_threshold: float,
    edge_threshold: float,
    prompt: str | None,
    tokens: str | None,
    max_feature_nodes: int | None,
    max_n_logits: int,
    desired_logit_prob: float,
    method: str,
    metric: str | None,
    intervention: str,
    ig_steps: int,
    ig_rule: str | None,
    neurons: bool,
    batch_size: int,
    aggregate: str,
    corrupted_column: str,
    limit: int | None,
    selection: str,
    amount: float | None,
    curve: bool,
    device: str,
    dtype: str,
    to_store: bool,
    graph_id: str | None,
    replace: bool,
    out_json: Path | None,
    plot_path: Path | None,
    out: str,
    **probe: Any,
) -> None:
    """Attribute MODEL. With --task: score every edge of its component graph on the task,
    select and evaluate a circuit, and store the graph (every edge with its score; ``in_graph``
    marks the circuit). With --transcoders: the feature-level attribution graph of one prompt
    (features, error nodes, tokens, logits; circuit-tracer's method), stored for score, prune,
    roi, compare and query. With --task, --saes DIR and --method sae-feature-circuit: a sparse
    feature circuit (SAE features and errors at the embedding and each layer's attention, MLP
    and residual stream; node effects by integrated gradients, --ig-steps 1 = attribution
    patching; direct edges between consecutive sites; docs/sae_circuits.md)."""
    if (task_path is None) == (transcoders is None):
        raise click.UsageError("give exactly one of --task FILE (components) or --transcoders DIR")
    if transcoders is not None:
        from circuit_atlas.cli.feature_graph import run_feature_attribution

        run_feature_attribution(
            state,
            model_source=model_source,
            transcoders=transcoders,
            prompt=prompt,
            tokens=tokens,
            graph_id=graph_id,
            max_feature_nodes=max_feature_nodes,
            batch_size=batch_size,
            max_n_logits=max_n_logits,
            desired_logit_prob=desired_logit_prob,
            device=device,
            dtype=dtype,
            to_store=to_store,
            replace=replace,
            out=out,
        )
        return
    assert task_path is not None
    if prompt is not None or tokens is not None:
        raise click.UsageError("--prompt and --tokens go with --transcoders")
    if (saes is not None) != (method == SAE_METHOD):
        raise click.UsageError(f"--saes DIR and --method {SAE_METHOD} go together")
    if saes is not None:
        from circuit_atlas.cli.sae_circuit import run_sae_circuit

        unused = {"--no-store": not to_store, "--out": out_json is not None,
                  "--plot": plot_path is not None, "--neurons": neurons,
                  "--ig-rule": ig_rule is not None, "--edges": amount is not None}  # fmt: skip
        given = [name for name, set_ in unused.items() if set_]
        if given:
            raise click.UsageError(
                f"{', '.join(given)} do not apply to --method {SAE_METHOD} (its circuit is "
                "stored; thresholds are --min-node-effect/--min-edge-effect)"
            )

        run_sae_circuit(
            state,
            model_source=model_source,
            task_path=task_path,
            saes=saes,
            graph_id=graph_id or default_graph_id(model_source, task_path, method),
            metric=metric,
            intervention=intervention,
            ig_steps=ig_steps,
            aggregate=aggregate,
            positions=positions,
            node_threshold=node_threshold,
            edge_threshold=edge_threshold,
            batch_size=batch_size,
            corrupted_column=corrupted_column,
            limit=limit,
            curve=curve,
            device=device,
            dtype=dtype,
            replace=replace,
            out=out,
        )
        return
    from circuit_atlas.graph import check_graph_id
    from circuit_atlas.ingest.attribution.preflight import check_model_source, read_task_rows

    # Everything that can be checked without the model is checked before it loads.
    if not to_store and out_json is None:
        raise click.UsageError("nothing to write: give --out, or leave --store on")
    if neurons and method == "exact":
        raise click.UsageError("--neurons needs a gradient method; 'exact' patches whole edges")
    read_task_rows(task_path, corrupted_column)
    check_model_source(model_source)
    graph_id = graph_id or default_graph_id(model_source, task_path, method)
    check_graph_id(graph_id)
    if to_store:
        state.check_can_store(graph_id, replace)

    from circuit_atlas.ingest.attribution.job import JobSettings, run_job
    from circuit_atlas.ingest.attribution.model_adapter import check_device, load_model
    from circuit_atlas.ingest.attribution.tasks import load_task

    check_device(device)
    model = load_model(model_source, device=device, dtype=dtype)
    task = load_task(task_path, model, corrupted_column=corrupted_column)
    if limit is not None:
        task.examples = task.examples[:limit]
    if plot_path is None and curve:
        plot_path = (
            state.settings.data_dir / "reports" / f"{graph_id}-faithfulness.png"
            if state.settings.data_dir
            else Path(f"{graph_id}-faithfulness.png")
        )
    settings = JobSettings(
        probe=probe_settings(probe, model, corrupted_column)
        if method == "subnetwork-probing"
        else None,
        method=method,
        metric=metric,
        intervention=intervention,
        ig_steps=ig_steps,
        ig_rule=ig_rule,
        neurons=neurons,
        batch_size=batch_size,
        aggregation=aggregate,
        selection=selection,
        amount=amount,
        curve=curve,
        progress=progress_enabled(),
    )
    output = run_job(
        model, task, settings, graph_id=graph_id, out_json=out_json, plot_path=plot_path
    )
    del model
    summary = output.summary()
    if to_store:
        written = state.store().write_graph(output.graph, replace=replace)
        summary["stored graph"] = f"{written.graph_id} ({written.status})"
    for name, path in output.files.items():
        summary[name] = str(path)
    edges = top_edges(output, 10)
    curve_points = output.evaluation.table() if output.evaluation is not None else None
    if out == "json":
        from circuit_atlas.cli.json_output import strict_json

        payload = {
            "summary": {
                k: v if isinstance(v, (int, float)) else str(v) for k, v in summary.items()
            },
            "strongest_edges": edges.to_dict(orient="records"),
            "faithfulness_curve": curve_points,
        }
        click.echo(strict_json(payload, indent=1))
        return
    if out == "csv":  # the one table a script wants: the strongest edges
        print_table(edges, out)
        return
    import pandas as pd

    print_table(pd.DataFrame({"": list(summary), "value": [str(v) for v in summary.values()]}))
    meaning = (
        "learned mask logit, shifted to ≥ 0"
        if method == "subnetwork-probing"
        else f"m(patch edge) − m(clean), {'averaged' if aggregate == 'mean' else 'summed'} "
        "over examples"
    )
    click.echo(f"\nstrongest edges (score = {meaning}):")
    print_table(edges)
    if curve_points is not None:
        click.echo("\nfaithfulness curve:")
        print_table(pd.DataFrame(curve_points).round(4))


def top_edges(output: Any, n: int) -> pd.DataFrame:
    """The ``n`` edges of largest |score|, with circuit membership."""
    import numpy as np
    import pandas as pd

    graph = output.result.graph
    forward, backward, scores = output.result.edge_scores()
    order = np.argsort(-np.abs(scores), kind="stable")[:n]
    return pd.DataFrame(
        {
            "source": [graph.forward_names[forward[i]] for i in order],
            "target": [graph.backward_names[backward[i]] for i in order],
            "qkv": [graph.backward_channels[backward[i]] for i in order],
            "score": [round(float(scores[i]), 5) for i in order],
            "in circuit": [bool(output.circuit[forward[i], backward[i]]) for i in order],
        }
    )
