"""The demo's feature-graph stage: a real model's attribution graph from transcoders the project
trained itself (``circuit-atlas train-transcoders``; the recipe and its report ship beside the
weights in ``circuit_atlas/data/transcoders/smollm2-135m``).

The graph is attributed before the store opens (torch's threads and the embedded JVM are kept
apart), then stored, scored, pruned and grouped into ROIs like any imported graph. The
transcoders are small (128 features a layer), so the replacement model explains only part of
each MLP: the per-layer fraction of variance explained and the graph's replacement score are
printed side by side, and the error nodes carry the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import click

from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest.attribution.model_adapter import LoadedModel
from circuit_atlas.progress import progress_enabled
from circuit_atlas.store import CircuitStore

FEATURE_GRAPH_ID = "smollm2-capital-features"
FEATURE_PROMPT = "The capital of France is"
MAX_FEATURE_NODES = 200
TRANSCODERS = "transcoders/smollm2-135m"


@dataclass(frozen=True)
class FeatureDemo:
    graph: CircuitGraph
    transcoders: Path
    variance_explained: list[float]  # per layer, held out, from the training report


def shipped_transcoders() -> Path | None:
    folder = Path(str(resources.files("circuit_atlas") / "data" / TRANSCODERS))
    return folder if (folder / "config.yaml").is_file() else None


def run_feature_attribution_demo(model: LoadedModel) -> FeatureDemo | None:
    """Attribute the demo prompt through the shipped transcoders (about a minute on 2 cores)."""
    from circuit_atlas.ingest.features.attribution import attribute_features, prompt_tokens
    from circuit_atlas.ingest.features.dictionaries import load_dictionaries
    from circuit_atlas.ingest.features.training import read_training_report

    click.echo("\n== feature attribution graph: SmolLM2-135M through the project's transcoders")
    folder = shipped_transcoders()
    if folder is None:
        click.echo("skipped: the package's transcoders are missing")
        return None
    graph = attribute_features(
        model,
        load_dictionaries(folder),
        prompt_tokens(model, FEATURE_PROMPT),
        FEATURE_GRAPH_ID,
        max_feature_nodes=MAX_FEATURE_NODES,
        prompt=FEATURE_PROMPT,
        transcoder_set="circuit-atlas/smollm2-135m-transcoders",
        progress=progress_enabled(),
    )
    reports = read_training_report(folder) or []
    logits = graph.nodes[graph.nodes["kind"] == "logit"]
    top = ", ".join(f"{t!r} {p:.2f}" for t, p in zip(logits["token"], logits["token_prob"]))
    click.echo(f"{FEATURE_PROMPT!r} → {top}")
    return FeatureDemo(graph, folder, [r.fraction_of_variance_explained for r in reports])


def show_feature_demo(store: CircuitStore, demo: FeatureDemo) -> None:
    """Store, score, prune and group the feature graph; say how good the replacement is."""
    from circuit_atlas.analysis.roi.report import roi_html
    from circuit_atlas.analysis.roi.stored import roi_stored
    from circuit_atlas.analysis.scores.stored import prune_stored_graph, score_stored_graph

    graph = demo.graph
    click.echo("\n== the feature graph in the store: scores, pruning, ROIs")
    result = store.write_graph(graph, replace=True, progress=progress_enabled())
    kinds = graph.nodes["kind"].value_counts()
    click.echo(
        f"{result.graph_id}: {kinds.get('feature', 0)} features (of "
        f"{graph.metadata.extra.get('n_active_features')} active), {kinds.get('error', 0)} error "
        f"nodes, {kinds.get('embedding', 0)} tokens, {kinds.get('logit', 0)} logits, "
        f"{result.n_edges:,} edges ({result.status})"
    )
    if demo.variance_explained:
        fve = demo.variance_explained
        click.echo(
            "transcoders' variance explained (held out), by layer: "
            + " ".join(f"{v:.2f}" for v in fve)
            + f"  (mean {sum(fve) / len(fve):.2f})"
        )
    full, pruned_row = score_stored_graph(store, graph.graph_id).report.rows[:2]
    click.echo(
        f"replacement score {full.replacement:.3f}, completeness {full.completeness:.3f} "
        f"(pruned: {pruned_row.replacement:.3f}/{pruned_row.completeness:.3f}); the rest of "
        "the MLPs' output runs through error nodes"
    )
    written, child = prune_stored_graph(store, graph.graph_id, replace=True)
    click.echo(f"pruned: {child.graph_id}: {child.n_nodes} nodes, {child.n_edges} edges")
    rois = roi_stored(store, [child.graph_id], "louvain")
    reports = store.artifact_dir.parent / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    page = reports / f"{FEATURE_GRAPH_ID}-rois.html"
    page.write_text(roi_html(rois.result, rois.quotient, written=rois.written))
    click.echo(f"ROIs: {rois.result.n_rois} (louvain) in {child.graph_id}; report {page}")
    click.echo(f"transcoders: {demo.transcoders} (training recipe and report: training.json there)")
