"""A self-contained HTML page of motif enrichment over one graph or a corpus of graphs.

One page, no network: inline CSS, the chart embedded as a base64 PNG (matplotlib's Agg backend),
every string from outside (graph ids, the title) passed through ``html.escape`` — graph ids
come from files and users. The corpus summary comes first because it answers the question a
reader brings ("which motifs are enriched, under which null model?"); one table per null model
then shows every graph's z-scores.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence

from circuit_atlas.analysis.motifs.census import MOTIFS, TRIAD_CODES
from circuit_atlas.analysis.motifs.enrichment import (
    CorpusEnrichment,
    MotifEnrichment,
    corpus_enrichment,
)

STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:1200px}"
    "table{border-collapse:collapse;font-size:12px;margin-bottom:1.5em}"
    "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}"
    "td:first-child,th:first-child{text-align:left}"
    "td.up{background:#d8f0d8}td.down{background:#f6dada}img{max-width:100%}"
)


def _number(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _z_cell(z: float | None) -> str:
    """A table cell for a z-score, shaded when |z| > 2; an undefined z says why on hover."""
    if z is None:
        return "<td title='the null model gave one count every time: no z-score'>–</td>"
    shade = " class='up'" if z > 2 else " class='down'" if z < -2 else ""
    return f"<td{shade}>{z:.2f}</td>"


def _motif_header(motif: str) -> str:
    return f"{html.escape(motif)} ({html.escape(TRIAD_CODES.get(motif, '?'))})"


def _null_models(per_graph: Mapping[str, Sequence[MotifEnrichment]]) -> list[str]:
    """Null models in the order first met."""
    return list(dict.fromkeys(row.null_model for rows in per_graph.values() for row in rows))


def summary_table(summary: Sequence[CorpusEnrichment]) -> str:
    """Per null model and motif: graphs with z > 0 and z > 2, mean z, Stouffer's combined z."""
    head = (
        "<tr><th>null model</th><th>motif</th><th>graphs with z</th><th>z &gt; 0</th>"
        "<th>z &gt; 2</th><th>mean z</th><th>combined z</th><th>no z</th></tr>"
    )
    body = [
        f"<tr><td>{html.escape(row.null_model)}</td><td>{_motif_header(row.motif)}</td>"
        f"<td>{row.n_graphs}</td><td>{row.n_positive}</td><td>{row.n_above_2}</td>"
        f"<td>{_number(row.mean_z)}</td>{_z_cell(row.combined_z)}<td>{row.n_undefined}</td></tr>"
        for row in summary
    ]
    return f"<table>{head}{''.join(body)}</table>"


def null_model_table(per_graph: Mapping[str, Sequence[MotifEnrichment]], null_model: str) -> str:
    """One row per graph, one column per motif: the z-scores under ``null_model``."""
    head = "<tr><th>graph</th>" + "".join(f"<th>{_motif_header(m)}</th>" for m in MOTIFS)
    rows = []
    for graph_id, results in per_graph.items():
        z = {row.motif: row.z for row in results if row.null_model == null_model}
        cells = "".join(_z_cell(z.get(motif)) for motif in MOTIFS)
        rows.append(f"<tr><td>{html.escape(graph_id)}</td>{cells}</tr>")
    return f"<table>{head}</tr>{''.join(rows)}</table>"


def combined_z_png(summary: Sequence[CorpusEnrichment]) -> str:
    """Grouped bars of the combined z of every motif under every null model (base64 PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    null_models = list(dict.fromkeys(row.null_model for row in summary))
    combined = {(row.null_model, row.motif): row.combined_z for row in summary}
    figure, axes = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(len(null_models), 1)
    for i, null_model in enumerate(null_models):
        values = [combined.get((null_model, motif)) for motif in MOTIFS]
        heights = [0.0 if v is None else v for v in values]
        axes.bar(np.arange(len(MOTIFS)) + i * width, heights, width, label=null_model)
    axes.axhline(0, color="black", linewidth=0.8)
    for level in (-2, 2):
        axes.axhline(level, color="grey", linewidth=0.8, linestyle="--")
    axes.set_xticks(np.arange(len(MOTIFS)) + 0.4 - width / 2, list(MOTIFS))
    axes.set_yscale("symlog", linthresh=2)
    axes.set_ylabel("combined z (Stouffer; symlog)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def render_motif_report(
    per_graph: Mapping[str, Sequence[MotifEnrichment]], title: str, chart: bool = True
) -> str:
    """The whole report as one HTML string: summary, chart (unless ``chart=False``), then one
    z-score table per null model."""
    summary = corpus_enrichment(per_graph)
    samples = sorted({row.n_samples for rows in per_graph.values() for row in rows})
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{len(per_graph)} graph(s); null samples per graph and null model: "
        f"{html.escape(', '.join(map(str, samples)) or '–')}. z = (observed − null mean) / null "
        "std; combined z = Σ z / √(graphs with a z) (Stouffer, treating graphs as "
        "independent). Shaded: |z| &gt; 2. “–”: the null model always gave the same count, so "
        "there is no z-score.</p>",
        "<h2>Corpus summary</h2>",
        summary_table(summary),
    ]
    if chart and summary:
        png = combined_z_png(summary)
        parts.append(
            f"<img alt='combined z per motif and null model' src='data:image/png;base64,{png}'>"
        )
    for null_model in _null_models(per_graph):
        parts += [f"<h2>z-scores under {html.escape(null_model)}</h2>"]
        parts.append(null_model_table(per_graph, null_model))
    parts.append("</body></html>")
    return "\n".join(parts)
