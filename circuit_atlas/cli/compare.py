"""``circuit-atlas compare`` and ``circuit-atlas consensus``: circuits across prompts."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.core import ParameterSource

from circuit_atlas.cli.options import (
    LazyChoice,
    StoreContext,
    format_option,
    pass_ctx,
    print_rows,
    print_table,
    selection_options,
)

if TYPE_CHECKING:
    from circuit_atlas.analysis.compare.pairwise import Comparison


def _granularities() -> tuple[str, ...]:
    from circuit_atlas.analysis.compare.identities import GRANULARITIES

    return GRANULARITIES


def _metrics() -> tuple[str, ...]:
    from circuit_atlas.analysis.compare.metrics import METRICS

    return tuple(METRICS)


def _alignments() -> tuple[str, ...]:
    from circuit_atlas.analysis.compare.consensus import ALIGNMENTS

    return ALIGNMENTS


MATRIX_PRINT_LIMIT = 8


def comparison_payload(comparison: Comparison, statistics: dict[str, object]) -> dict[str, object]:
    """What ``compare --json`` prints; NaN stays a float here and becomes null in strict_json."""
    from circuit_atlas.analysis.compare.metrics import METRICS

    return {
        "by": comparison.by,
        "graph_ids": list(comparison.graph_ids),
        "pairs": comparison.pairs.to_dict("records"),
        "matrix": {m: comparison.matrix(m).to_dict() for m in METRICS},
        "notes": list(comparison.notes),
        **statistics,
    }


@click.command()
@selection_options
@click.option(
    "--by",
    type=LazyChoice(_granularities),
    default="feature",
    show_default=True,
    help="Identity across graphs: feature = (layer, index, transcoder set) at any position; "
    "node = node key, position included; edge = endpoints' node keys and channel.",
)
@click.option("--metric", type=LazyChoice(_metrics), default="jaccard", show_default=True,
              help="The metric printed as a matrix.")  # fmt: skip
@click.option(
    "--stats",
    is_flag=True,
    help="Add omnibus distances and latent distribution tests (their assumptions are printed "
    "with the result and stated in docs/compare.md).",
)
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), help="Write HTML here.")
@format_option
@pass_ctx
def compare(
    state: StoreContext,
    graph_ids: tuple[str, ...],
    contains: str | None,
    model: str | None,
    allow_mixed: bool,
    by: str,
    metric: str,
    stats: bool,
    report: Path | None,
    out: str,
) -> None:
    """Compare graphs pairwise: Jaccard, weighted overlap, Spearman of shared edge weights,
    activation Spearman, influence overlap (definitions: docs/compare.md)."""
    from circuit_atlas.analysis.compare.metrics import METRICS
    from circuit_atlas.analysis.compare.omnibus import ASSUMPTIONS
    from circuit_atlas.analysis.compare.pairwise import compare_graphs
    from circuit_atlas.analysis.compare.stored import load_graphs, select_graph_ids
    from circuit_atlas.cli.json_output import strict_json

    store = state.store()
    ids = select_graph_ids(store, list(graph_ids), contains, model)
    graphs = load_graphs(store, ids)  # read once: the metrics and --stats both use them
    comparison = compare_graphs(graphs, by, allow_mixed)
    sections: list[tuple[str, str]] = []
    statistics: dict[str, object] = {}
    latent_tests: list[dict[str, Any]] = []
    if stats:
        from circuit_atlas.analysis.compare.omnibus import (
            latent_distribution_pvalues,
            omnibus,
            ranked_adjacencies,
        )
        from circuit_atlas.analysis.compare.report import statistics_sections

        ranked = ranked_adjacencies(graphs, by)  # the embedding and the tests share them
        result = omnibus(graphs, by, ranked=ranked)
        statistics["omnibus_distance"] = result.distances.round(6).to_dict()
        statistics["shared_nodes"] = len(result.node_ids)
        from circuit_atlas.progress import progress_enabled

        tests = latent_distribution_pvalues(graphs, by, ranked=ranked, progress=progress_enabled())
        latent_tests = tests.to_dict("records")
        statistics["latent_distribution_test"] = latent_tests
        statistics["statistics_assumptions"] = ASSUMPTIONS
        sections = statistics_sections(result.distances, tests)
    if report is not None:
        from circuit_atlas.analysis.compare.report import comparison_html

        report.write_text(comparison_html(comparison, sections))
    if out == "json":
        click.echo(strict_json(comparison_payload(comparison, statistics), indent=1))
        return
    if out == "csv":  # one row per pair, every metric
        print_table(comparison.pairs, out)
        return
    click.echo(f"{len(ids)} graphs, {len(comparison.pairs)} pairs, by {by}")
    summary = comparison.pairs[list(METRICS)].describe().T[["mean", "min", "max"]]
    print_table(summary.reset_index(names="metric"))
    if len(ids) <= MATRIX_PRINT_LIMIT:
        click.echo(f"\n{metric}:")
        click.echo(comparison.matrix(metric).round(4).to_string())
    else:
        ranked = comparison.pairs.sort_values(metric, ascending=False)
        click.echo(f"\nmost similar pairs by {metric}:")
        print_table(ranked.head(5)[["graph_a", "graph_b", metric]])
    for note in comparison.notes:
        click.echo(f"note: {note}")
    for row in latent_tests:
        click.echo(f"latent distribution test {row['graph_a']} vs {row['graph_b']}: "
                   f"p = {row['pvalue']:.3f}")  # fmt: skip
    if report is not None:
        click.echo(f"report: {report}")


def min_fraction_given() -> bool:
    """Whether --min-fraction was typed (not just its default)."""
    source = click.get_current_context().get_parameter_source("min_fraction")
    return source is ParameterSource.COMMANDLINE


def check_one_fraction(fraction_given: bool, union_: bool, intersection: bool) -> None:
    """--union, --intersection and --min-fraction each set the fraction: refuse two at once."""
    given = [
        name
        for name, on in (
            ("--union", union_),
            ("--intersection", intersection),
            ("--min-fraction", fraction_given),
        )
        if on
    ]
    if len(given) > 1:
        raise click.UsageError(
            f"{' and '.join(given)} contradict each other; give one of --union, --intersection, "
            "--min-fraction"
        )


@click.command()
@selection_options
@click.option(
    "--min-fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True),
    default=0.5,
    show_default=True,
    help="Keep edges present in at least this share of graphs.",
)
@click.option("--intersection", is_flag=True, help="Same as --min-fraction 1.")
@click.option("--union", "union_", is_flag=True, help="Keep edges present in any graph.")
@click.option(
    "--align",
    type=LazyChoice(_alignments),
    default="start",
    show_default=True,
    help="Which positions line up: start = positions as they are (prompts of one template); "
    "end = prompts right-aligned, so the last tokens (and the logits) match across lengths.",
)
@click.option("--graph-id", "new_graph_id", help="Id of the consensus graph (default: derived).")
@click.option("--replace", is_flag=True, help="Overwrite a stored graph of that id.")
@format_option
@pass_ctx
def consensus(
    state: StoreContext,
    graph_ids: tuple[str, ...],
    contains: str | None,
    model: str | None,
    allow_mixed: bool,
    min_fraction: float,
    intersection: bool,
    union_: bool,
    align: str,
    new_graph_id: str | None,
    replace: bool,
    out: str,
) -> None:
    """Store the consensus circuit of graphs, linked [:DERIVED_FROM] to each of them.

    Nodes and edges are matched by node key, which includes the token position. With
    --align start, prompts of different lengths only match where positions coincide from the
    first token; --align end right-aligns the prompts so their last tokens coincide (the
    consensus graph's positions are the longest prompt's). Token text and labels are kept only
    where all matched prompts agree. For features at any position use `compare --by feature`
    or the shared_features query (docs/compare.md).
    """
    from circuit_atlas.analysis.compare.stored import select_graph_ids, store_consensus

    check_one_fraction(min_fraction_given(), union_, intersection)
    store = state.store()
    ids = select_graph_ids(store, list(graph_ids), contains, model)
    if intersection:
        min_fraction = 1.0
    elif union_:
        min_fraction = 1.0 / len(ids)
    result, graph = store_consensus(
        store, ids, min_fraction, new_graph_id, replace, allow_mixed, align
    )
    notes = consensus_notes(graph, align, min_fraction)
    summary = {
        "graph_id": graph.graph_id,
        "sources": len(ids),
        "min_fraction": min_fraction,
        "align": align,
        "status": result.status,
        **graph.summary(),
        "notes": notes,
    }
    if out != "table":
        print_rows([summary], out)
        return
    aligned = ", right-aligned" if align == "end" else ""
    click.echo(
        f"{graph.graph_id}: consensus of {len(ids)} graphs at >= {min_fraction:.0%}{aligned}: "
        f"{graph.n_nodes} nodes, {graph.n_edges} edges ({result.status})"
    )
    print_rows([graph.summary()])
    for note in notes:
        click.echo(f"note: {note}")


def consensus_notes(graph: Any, align: str, min_fraction: float) -> list[str]:
    """What a reader of a consensus graph should know: how positions were matched, and whether
    any logit node survived (without one, scores and paths to logits have nothing to reach)."""
    notes = []
    lengths = graph.metadata.extra.get("prompt_lengths", [])
    if len(lengths) > 1 and align == "start":
        notes.append(
            f"the prompts have {min(lengths)} to {max(lengths)} tokens and nodes match by "
            "position from the first token; --align end lines up their last tokens, and "
            "compare --by feature matches features at any position"
        )
    elif len(lengths) > 1:
        notes.append(
            f"the prompts have {min(lengths)} to {max(lengths)} tokens, right-aligned: "
            "nodes match at the same distance from the last token; compare --by feature "
            "matches features at any position"
        )
    if graph.n_nodes and not (graph.nodes["kind"] == "logit").any():
        notes.append(
            f"no logit node is in >= {min_fraction:.0%} of the graphs (their logits differ in "
            "token or position), so the consensus graph cannot be scored and no path reaches a "
            "logit; --align end, a lower --min-fraction or fewer, more similar prompts keep one"
        )
    return notes
