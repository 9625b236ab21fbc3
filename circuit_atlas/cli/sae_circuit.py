"""``circuit-atlas attribute --method sae-feature-circuit --saes DIR --task FILE``: a sparse
feature circuit over a task (SAE features and error terms of every site), stored as a graph."""

from __future__ import annotations

from pathlib import Path

import click

from circuit_atlas.cli.options import StoreContext, print_table
from circuit_atlas.progress import progress_enabled


def run_sae_circuit(
    state: StoreContext,
    *,
    model_source: str,
    task_path: Path,
    saes: Path,
    graph_id: str,
    metric: str | None,
    intervention: str,
    ig_steps: int,
    aggregate: str,
    positions: str,
    node_threshold: float,
    edge_threshold: float,
    batch_size: int,
    corrupted_column: str,
    limit: int | None,
    curve: bool,
    device: str,
    dtype: str,
    replace: bool,
    out: str,
) -> None:
    from circuit_atlas.graph import check_graph_id
    from circuit_atlas.ingest.attribution.preflight import check_model_source, read_task_rows
    from circuit_atlas.ingest.sae_circuits.circuit import CircuitSettings, feature_circuit
    from circuit_atlas.ingest.sae_circuits.sites import build_sites, load_saes

    settings = CircuitSettings(
        metric=metric, ig_steps=ig_steps, patch=intervention, aggregation=aggregate,
        positions=positions, node_threshold=node_threshold, edge_threshold=edge_threshold,
        batch_size=batch_size, curve=curve, progress=progress_enabled(),
    )  # fmt: skip
    settings.check()
    read_task_rows(task_path, corrupted_column)  # before the model loads: bad input fails fast
    check_model_source(model_source)
    check_graph_id(graph_id)
    loaded_saes = load_saes(saes)
    state.check_can_store(graph_id, replace)

    from circuit_atlas.ingest.attribution.model_adapter import check_device, load_model
    from circuit_atlas.ingest.attribution.tasks import load_task

    check_device(device)
    model = load_model(model_source, device=device, dtype=dtype)
    sites = build_sites(model, loaded_saes)
    task = load_task(task_path, model, corrupted_column=corrupted_column)
    if limit is not None:
        task.examples = task.examples[:limit]
    graph = feature_circuit(model, sites, task, settings, graph_id, str(saes))
    written = state.store().write_graph(graph, replace=replace)
    kinds = graph.nodes["kind"].value_counts()
    summary = {
        "graph": f"{written.graph_id} ({written.status})",
        "examples": len(task.examples),
        "sites with SAEs": ", ".join(graph.metadata.extra["sites_with_saes"]) or "none",
        "node effects": "attribution patching" if ig_steps == 1 else f"IG, {ig_steps} steps",
        "feature nodes": int(sum(v for k, v in kinds.items() if str(k).endswith("_feature"))),
        "error nodes": int(sum(v for k, v in kinds.items() if str(k).endswith("_error"))),
        "edges": graph.n_edges,
    }
    curve_points = graph.metadata.extra.get("ablation_curve")
    if out == "json":
        from circuit_atlas.cli.json_output import strict_json

        click.echo(strict_json({"summary": summary, "ablation_curve": curve_points}, indent=1))
        return
    import pandas as pd

    print_table(pd.DataFrame({"": list(summary), "value": [str(v) for v in summary.values()]}), out)
    if curve_points and out == "table":
        click.echo("\nfaithfulness and completeness, node vs edge ablation (top-k nodes):")
        print_table(pd.DataFrame(curve_points).round(4))
