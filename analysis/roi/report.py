"""A self-contained HTML report of one ROI run: plots embedded as PNG, tables, quality."""

from __future__ import annotations

import base64
import html
import io
import json

import numpy as np
import pandas as pd

from circuit_atlas.graph import CircuitGraph

from .detect import RoiResult

MAX_PIXELS = 1200  # adjacency plots of bigger runs are block-averaged to this many rows
TOP_MEMBERS = 8


def _png(figure) -> str:  # noqa: ANN001 (matplotlib figure)
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _pyplot():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sorted_adjacency_png(result: RoiResult) -> str:
    """The affinity with rows and columns grouped by ROI: block structure is visible."""
    plt = _pyplot()
    order = np.argsort(result.labels, kind="stable")
    matrix = result.affinity.matrix[order][:, order]
    n = matrix.shape[0]
    if n > MAX_PIXELS:
        bins = np.linspace(0, n, MAX_PIXELS + 1).astype(int)
        coarse = np.add.reduceat(np.add.reduceat(matrix.toarray(), bins[:-1], 0), bins[:-1], 1)
        image = coarse
    else:
        image = matrix.toarray()
    figure, axes = plt.subplots(figsize=(6, 6))
    axes.imshow(np.log1p(image), cmap="magma", interpolation="nearest")
    edges = np.cumsum(np.bincount(result.labels))[:-1] * (image.shape[0] / n)
    for edge in edges:
        axes.axhline(edge - 0.5, color="cyan", lw=0.5)
        axes.axvline(edge - 0.5, color="cyan", lw=0.5)
    axes.set_title("affinity sorted by ROI (log 1 + w)")
    axes.set_xticks([])
    axes.set_yticks([])
    return _png(figure)


def sizes_and_layers_png(result: RoiResult) -> str:
    plt = _pyplot()
    sizes = np.bincount(result.labels)
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.bar(range(len(sizes)), sizes, color="teal")
    left.set_xlabel("ROI")
    left.set_ylabel("members")
    left.set_title("ROI sizes")
    members = result.members()
    layered = members[members["layer"] >= 0]
    if len(layered):
        table = pd.crosstab(layered["layer"], layered["roi"])
        image = right.imshow(table.to_numpy(), aspect="auto", cmap="viridis", origin="lower")
        right.set_yticks(range(len(table.index)), table.index, fontsize=6)
        right.set_xticks(range(len(table.columns)), table.columns, fontsize=7)
        figure.colorbar(image, ax=right)
    right.set_xlabel("ROI")
    right.set_ylabel("layer")
    right.set_title("layer × ROI (members)")
    figure.tight_layout()
    return _png(figure)


def quotient_png(quotient: CircuitGraph) -> str:
    plt = _pyplot()
    labels = [k.display_id() for k in quotient.keys()]
    dense = quotient.adjacency().toarray()
    figure, axes = plt.subplots(figsize=(7, 6))
    limit = np.abs(dense).max() or 1.0
    image = axes.imshow(dense, cmap="RdBu_r", vmin=-limit, vmax=limit)
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=6)
    axes.set_yticks(range(len(labels)), labels, fontsize=6)
    axes.set_xlabel("source")
    axes.set_ylabel("target")
    axes.set_title("quotient graph: summed weights (row = target)")
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    return _png(figure)


def top_members_table(result: RoiResult) -> pd.DataFrame:
    members = result.members()
    rows = []
    for roi, part in members.groupby("roi"):
        for row in part.sort_values("strength", ascending=False).head(TOP_MEMBERS).itertuples():
            seen = result.affinity.positions.get(row.id, [])
            rows.append(
                {
                    "roi": roi,
                    "member": row.id,
                    "layer": row.layer if row.layer >= 0 else None,
                    "label": row.label,
                    "strength": row.strength,
                    "positions": ", ".join(seen[:4])
                    + (f" (+{len(seen) - 4})" if len(seen) > 4 else ""),
                }
            )
    return pd.DataFrame(rows)


def roi_html(result: RoiResult, quotient: CircuitGraph) -> str:
    quality = pd.DataFrame(
        [{"measure": k, "value": v} for k, v in result.quality.items() if v is not None]
    )
    title = f"ROIs by {result.method} — {len(result.affinity.graph_ids)} graph(s)"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:"
        "collapse;font-size:12px}td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>run <code>{html.escape(result.run_id)}</code>; {result.n_rois} ROIs over "
        f"{result.affinity.n} {'features' if result.affinity.scope == 'cross-prompt' else 'nodes'}"
        f" ({html.escape(result.affinity.kind)} affinity); parameters "
        f"<code>{html.escape(json.dumps(result.params.as_dict()))}</code></p>",
        "<h2>Quality and stability</h2>",
        quality.to_html(index=False, border=0),
        "<h2>Adjacency sorted by ROI</h2>",
        f"<img alt='sorted adjacency' src='data:image/png;base64,{sorted_adjacency_png(result)}'>",
        "<h2>Sizes and layers</h2>",
        f"<img alt='sizes and layers' src='data:image/png;base64,{sizes_and_layers_png(result)}'>",
        "<h2>Top members per ROI</h2>",
        top_members_table(result).to_html(index=False, border=0, float_format="{:.3g}".format),
        "<h2>Quotient graph</h2>",
        f"<p>stored as graph <code>{html.escape(quotient.graph_id)}</code> "
        f"({quotient.n_nodes} nodes, {quotient.n_edges} edges)</p>",
        f"<img alt='quotient graph' src='data:image/png;base64,{quotient_png(quotient)}'>",
        "</body></html>",
    ]
    return "\n".join(parts)
