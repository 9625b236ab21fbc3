"""A self-contained HTML comparison report: clustered heatmaps as embedded PNGs, tables, notes."""

from __future__ import annotations

import base64
import html
import io
import math

import numpy as np
import pandas as pd
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from circuit_atlas.analysis.compare.omnibus import ASSUMPTIONS
from circuit_atlas.analysis.compare.pairwise import Comparison

HEATMAP_METRICS = ("jaccard", "weighted_overlap", "influence_overlap")


def cluster_order(similarity: pd.DataFrame) -> list[int]:
    """Leaf order of average-linkage clustering on 1 − similarity (NaN treated as 0)."""
    if len(similarity) < 3:
        return list(range(len(similarity)))
    distance = 1.0 - similarity.fillna(0.0).to_numpy()
    np.fill_diagonal(distance, 0.0)
    distance = np.clip((distance + distance.T) / 2, 0.0, None)
    return leaves_list(linkage(squareform(distance, checks=False), method="average")).tolist()


def heatmap_matrices(comparison: Comparison) -> dict[str, pd.DataFrame]:
    """The metrics worth a heatmap (some value that is not NaN), by name."""
    matrices = {}
    for metric in HEATMAP_METRICS:
        values = comparison.pairs[metric].tolist()
        if values and not all(math.isnan(v) for v in values):
            matrices[metric] = comparison.matrix(metric)
    return matrices


def shared_order(matrices: dict[str, pd.DataFrame]) -> list[int]:
    """One row order for every heatmap, so they can be read side by side: the clustering of
    the first metric's matrix (Jaccard when it has values)."""
    if not matrices:
        return []
    return cluster_order(next(iter(matrices.values())))


def heatmap_png(similarity: pd.DataFrame, title: str, order: list[int] | None = None) -> bytes:
    """A heatmap of ``similarity`` with rows and columns in ``order`` (default: its own
    clustering)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = cluster_order(similarity) if order is None else order
    ordered = similarity.iloc[order, order]
    size = min(4 + 0.18 * len(ordered), 16)
    figure, axes = plt.subplots(figsize=(size, size * 0.85))
    image = axes.imshow(ordered.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=1)
    labels = [str(label) for label in ordered.index]
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    axes.set_yticks(range(len(labels)), labels, fontsize=6)
    axes.set_title(title)
    figure.colorbar(image, ax=axes, shrink=0.8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda v: f"{v:.4f}", border=0, na_rep="–")


def statistics_sections(distances: pd.DataFrame, tests: pd.DataFrame) -> list[tuple[str, str]]:
    """The ``--stats`` sections, opening with what the statistics assume so that a p-value is
    never shown without the caveat that it is not a calibrated error rate."""
    assumptions = f"<p class='assumptions'><em>{html.escape(ASSUMPTIONS)}</em></p>"
    return [
        (
            "Statistical comparison: omnibus embedding distances",
            assumptions + distances.to_html(float_format="{:.4f}".format, border=0),
        ),
        ("Latent distribution tests (dcorr, bootstrap p-values)", _table(tests)),
    ]


def comparison_html(
    comparison: Comparison, extra_sections: list[tuple[str, str]] | None = None
) -> str:
    """The whole report as one HTML string (no external files or scripts)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Circuit Atlas comparison ({len(comparison.graph_ids)} graphs)</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse;font-size:12px}td,th{padding:2px 8px;"
        "border-bottom:1px solid #ddd;text-align:right}img{max-width:100%}</style>",
        "</head><body>",
        f"<h1>Comparison of {len(comparison.graph_ids)} graphs, by {comparison.by}</h1>",
    ]
    summary = comparison.pairs.drop(columns=["graph_a", "graph_b"]).describe().T
    summary = summary[["mean", "min", "50%", "max"]].reset_index(names="metric")
    parts += ["<h2>Summary over pairs</h2>", _table(summary)]
    for note in comparison.notes:
        parts.append(f"<p><em>{html.escape(note)}</em></p>")
    matrices = heatmap_matrices(comparison)
    order = shared_order(matrices)
    if matrices:
        first = next(iter(matrices))
        parts.append(
            f"<p>Every heatmap uses one row order: the average-linkage clustering of {first}.</p>"
        )
    for metric, matrix in matrices.items():
        png = base64.b64encode(heatmap_png(matrix, metric, order)).decode()
        parts += [
            f"<h2>{metric}</h2>",
            f"<img alt='{metric} heatmap' src='data:image/png;base64,{png}'>",
        ]
    for title, body in extra_sections or []:
        parts += [f"<h2>{html.escape(title)}</h2>", body]
    parts += ["<h2>All pairs</h2>", _table(comparison.pairs), "</body></html>"]
    return "\n".join(parts)
