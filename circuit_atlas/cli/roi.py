"""``circuit-atlas roi``: regions of interest in one graph or across prompts."""

from __future__ import annotations

from pathlib import Path

import click

from circuit_atlas.cli.options import (
    LazyChoice,
    StoreContext,
    format_option,
    pass_ctx,
    print_rows,
    print_table,
    selection_options,
)


def _affinities() -> tuple[str, ...]:
    from circuit_atlas.analysis.roi.affinity import (
        CROSS_PROMPT_KINDS,
        EDGE_PROFILE,
        FUNCTIONAL_KINDS,
    )

    return (*CROSS_PROMPT_KINDS, EDGE_PROFILE, *FUNCTIONAL_KINDS)


def _methods() -> list[str]:
    from circuit_atlas.analysis.roi.algorithms import METHODS

    return sorted(METHODS)


@click.command()
@selection_options
@click.option("--method", type=LazyChoice(_methods), default="leiden", show_default=True)
@click.option("--k", type=click.IntRange(min=1),
              help="Number of ROIs: required by spectral-sklearn; fixes it for spectral, sbm, "
                   "dcsbm (else BIC picks it up to --max-k). louvain and leiden do not take it "
                   "(an error): use --resolution.")  # fmt: skip
@click.option("--max-k", type=click.IntRange(min=1), default=10, show_default=True,
              help="spectral, sbm, dcsbm: largest number of ROIs BIC may choose (also the "
                   "spectral embedding's dimension).")  # fmt: skip
@click.option("--resolution", type=float, default=1.0, show_default=True,
              help="Modularity resolution (louvain, leiden).")  # fmt: skip
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--embedding", type=click.Choice(["adjacency", "laplacian"]), default="adjacency",
              show_default=True, help="Spectral embedding (spectral, sbm, dcsbm).")  # fmt: skip
@click.option("--binarize-quantile", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="SBM/DCSBM: edges at or above this quantile of |w| count.")  # fmt: skip
@click.option("--affinity", type=LazyChoice(_affinities), default="cooccurrence",
              show_default=True,
              help="Across prompts: how features are tied. One graph: edge-profile groups nodes "
                   "by the cosine of their signed in/out edges (Neuronpedia-style supernodes; "
                   "with --method agglomerative). A feature circuit: activation-/effect-"
                   "correlation/-covariance over its examples (functional "
                   "connectivity).")  # fmt: skip
@click.option("--subgraph", metavar="NAME",
              help="edge-profile: group only this stored subgraph's pinned nodes.")  # fmt: skip
@click.option("--min-similarity", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="agglomerative: merge groups this alike or more (average linkage).")  # fmt: skip
@click.option("--min-graphs", type=click.IntRange(min=1), default=2, show_default=True,
              help="Across prompts: features in at least this many graphs.")  # fmt: skip
@click.option("--stability", type=click.IntRange(min=0), default=0,
              help="Rerun with this many seeds; report the mean ARI.")  # fmt: skip
@click.option("--bootstrap", type=click.IntRange(min=0), default=0,
              help="Across prompts (2+ graphs): resample prompts N times; report the mean "
                   "ARI.")  # fmt: skip
@click.option("--decoders", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Across prompts: .npz of decoder directions (format above); reports the mean "
                   "within-ROI cosine.")  # fmt: skip
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="Write HTML here.")
@click.option("--no-write", is_flag=True, help="Compute only; store nothing.")
@format_option
@pass_ctx
def roi(
    state: StoreContext,
    graph_ids: tuple[str, ...],
    contains: str | None,
    model: str | None,
    method: str,
    k: int | None,
    max_k: int,
    resolution: float,
    seed: int,
    embedding: str,
    binarize_quantile: float,
    affinity: str,
    subgraph: str | None,
    min_similarity: float,
    min_graphs: int,
    allow_mixed: bool,
    stability: int,
    bootstrap: int,
    decoders: Path | None,
    report: Path | None,
    no_write: bool,
    out: str,
) -> None:
    """Group the nodes of one graph, or the features of several, into regions of interest.

    ROIs, their members and the ROI-level quotient graph are written back to the store.
    Methods, parameters and the stored schema: docs/rois.md.

    \b
    --decoders FILE: a NumPy .npz (numpy.savez) with
      schema_version  1
      layer, feature  int arrays (n,): the feature identity, as in the graphs
      vectors         float array (n, d): one decoder direction per feature
      model, transcoder_set  optional strings; if given, the graphs must match
    Features the file lacks are skipped and counted. The Neuronpedia graph
    files carry no decoder vectors, so without this option the cosine is null.
    """
    from circuit_atlas.analysis.compare.stored import select_graph_ids
    from circuit_atlas.analysis.roi.algorithms import RoiParams
    from circuit_atlas.analysis.roi.decoders import load_decoders
    from circuit_atlas.analysis.roi.stored import roi_stored
    from circuit_atlas.cli.json_output import strict_json

    directions = load_decoders(decoders) if decoders is not None else None
    store = state.store()
    ids = select_graph_ids(store, list(graph_ids), contains, model)
    params = RoiParams(seed=seed, resolution=resolution, k=k, max_k=max_k, embedding=embedding,
                       binarize_quantile=binarize_quantile,
                       min_similarity=min_similarity)  # fmt: skip
    stored = roi_stored(store, ids, method, params, affinity, min_graphs, allow_mixed, stability,
                        bootstrap, write=not no_write, decoders=directions,
                        subgraph=subgraph)  # fmt: skip
    result = stored.result
    if report is not None:
        from circuit_atlas.analysis.roi.report import roi_html

        report.write_text(roi_html(result, stored.quotient, written=stored.written))
    notes = result.details.get("notes", [])
    if out == "csv":  # one row per member: its ROI and id
        print_table(result.members(), out)
        return
    if out == "json":
        members = result.members()
        payload = {
            "run_id": result.run_id,
            "method": method,
            "params": result.used_params,
            "scope": result.affinity.scope,
            "min_graphs": result.affinity.min_graphs,
            "graph_ids": list(result.affinity.graph_ids),
            "quality": result.quality,
            "details": result.details,
            "decoder_cosine": result.decoder.as_dict() if result.decoder else None,
            "quotient_graph_id": stored.quotient.graph_id,
            "rois": [
                {"roi": int(str(r)), "members": part["id"].tolist()}
                for r, part in members.groupby("roi")
            ],
        }
        click.echo(strict_json(payload, indent=1))
        return
    sizes = result.members().groupby("roi").size()
    click.echo(f"run {result.run_id}: {result.n_rois} ROIs over {result.affinity.n} "
               f"{'features' if result.affinity.scope == 'cross-prompt' else 'nodes'}")  # fmt: skip
    quality = {k: v for k, v in result.quality.items() if v is not None}
    print_rows([{"measure": k, "value": v} for k, v in quality.items()])
    click.echo(f"sizes: {', '.join(str(s) for s in sizes.tolist())}")
    if result.decoder is not None:
        click.echo(f"decoder cosine per ROI: "
                   f"{', '.join('–' if v is None else f'{v:.3f}' for v in result.decoder.per_roi)}"
                   f"; {result.decoder.missing} feature(s) without a vector")  # fmt: skip
    for note in notes:
        click.echo(f"note: {note}")
    if not no_write:
        click.echo(
            f"written: {result.n_rois} :ROI nodes; quotient graph {stored.quotient.graph_id}"
        )
        click.echo(f"members: circuit-atlas query roi_members --param run_id={result.run_id}")
    if report is not None:
        click.echo(f"report: {report}")
