"""``circuit-atlas motifs``: 3-node motif census of stored graphs against null models."""

from __future__ import annotations

from pathlib import Path

import click

from circuit_atlas.cli.options import (
    LazyChoice,
    StoreContext,
    format_option,
    pass_ctx,
    print_rows,
    selection_options,
)


def _null_models() -> list[str]:
    from circuit_atlas.analysis.motifs.null_models import NULL_MODELS

    return list(NULL_MODELS)


@click.command()
@selection_options
@click.option(
    "--null",
    "null_models",
    type=LazyChoice(_null_models),
    multiple=True,
    help="Null model(s) to compare with (default: all four): erdos-renyi, degree (in/out "
    "degrees kept), layer-position (edges keep the (layer, position) classes of their ends), "
    "degree-layer-position (both). Repeat.",
)
@click.option("--samples", type=click.IntRange(min=2), default=20, show_default=True,
              help="Null graphs drawn per null model.")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--min-abs-weight", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Count only edges with |weight| above this.")  # fmt: skip
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="Write HTML here.")
@click.option("--no-write", is_flag=True, help="Compute only; store nothing.")
@format_option
@pass_ctx
def motifs(
    state: StoreContext,
    graph_ids: tuple[str, ...],
    contains: str | None,
    model: str | None,
    allow_mixed: bool,
    null_models: tuple[str, ...],
    samples: int,
    seed: int,
    min_abs_weight: float,
    report: Path | None,
    no_write: bool,
    out: str,
) -> None:
    """Feed-forward loops, chains, fan-outs, fan-ins and cycles per graph, with z-scores against
    null graphs; written back as :MotifStat nodes (query motif_enrichment). docs/motifs.md."""
    from tqdm.auto import tqdm

    from circuit_atlas.analysis.compare.stored import select_graph_ids
    from circuit_atlas.analysis.motifs.enrichment import corpus_enrichment
    from circuit_atlas.analysis.motifs.null_models import NULL_MODELS
    from circuit_atlas.analysis.motifs.stored import census_stored
    from circuit_atlas.progress import progress_enabled

    store = state.store()
    ids = select_graph_ids(store, list(graph_ids), contains, model)
    chosen = list(null_models) or list(NULL_MODELS)
    with tqdm(total=len(ids), unit="graph", desc="motifs", disable=not progress_enabled()) as bar:
        results = census_stored(store, ids, chosen, samples, seed, min_abs_weight,
                                write=not no_write, on_graph=lambda _: bar.update())  # fmt: skip
    if report is not None:
        from circuit_atlas.analysis.motifs.report import render_motif_report

        title = ids[0] if len(ids) == 1 else f"{len(ids)} graphs"
        report.write_text(render_motif_report(results, f"Motifs: {title}"), encoding="utf-8")
    if len(ids) == 1:
        rows = [
            {
                "motif": r.motif,
                "null_model": r.null_model,
                "observed": r.observed,
                "null_mean": r.null_mean,
                "null_std": r.null_std,
                "z": r.z,
            }
            for r in results[ids[0]]
        ]
    else:
        rows = [
            {
                "motif": s.motif,
                "null_model": s.null_model,
                "graphs": s.n_graphs + s.n_undefined,
                "with_z": s.n_graphs,
                "z>0": s.n_positive,
                "z>2": s.n_above_2,
                "mean_z": s.mean_z,
                "combined_z": s.combined_z,
            }
            for s in corpus_enrichment(results)
        ]
    print_rows(rows, out)
    if out == "table" and not no_write:
        click.echo(f"written: :MotifStat nodes for {len(ids)} graph(s)")
