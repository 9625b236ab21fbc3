"""A self-contained HTML report of one ROI run: plots embedded as PNG, tables, quality."""

from __future__ import annotations

import base64
import html
import io
import json

import numpy as np
import pandas as pd

from circuit_atlas.analysis.roi.detect import RoiResult
from circuit_atlas.graph import CircuitGraph, NodeKind

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


def readable_labels(graph: CircuitGraph) -> list[str]:
    """Axis labels people can read: ROIs by number, a token node by its text and position
    (``'Paris'@4``), a logit by the token it predicts (``→ ' France'``); other nodes by their
    display id."""
    tokens = graph.metadata.tokens
    labels = []
    for key, token in zip(graph.keys(), graph.nodes_frame()["token"]):
        if key.kind == NodeKind.ROI.value:
            labels.append(f"ROI {key.feature}")
        elif key.kind == NodeKind.EMBEDDING.value and key.pos is not None and key.pos < len(tokens):
            labels.append(f"{tokens[key.pos]!r}@{key.pos}")
        elif key.kind == NodeKind.LOGIT.value and isinstance(token, str) and token:
            labels.append(f"→ {token!r}")
        else:
            labels.append(key.display_id())
    return labels


def quotient_png(quotient: CircuitGraph) -> str:
    plt = _pyplot()
    labels = readable_labels(quotient)
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


LIKELIHOODS = {
    "graspologic": "graspologic's estimators on the dense binary matrix",
    "sparse-bernoulli-sbm": "Bernoulli SBM from sparse block edge counts (above DENSE_LIMIT nodes)",
    "sparse-poisson-dcsbm": "Karrer–Newman Poisson DCSBM from sparse block edge counts "
    "(above DENSE_LIMIT nodes)",
}


def model_selection_html(result: RoiResult) -> str:
    """BIC per K (spectral, sbm, dcsbm) and, for block models, how the fit saw the graph."""
    details = result.details
    if "bic" not in details:
        return ""
    chosen = details["chosen_k"]
    table = pd.DataFrame(
        [{"K": k, "BIC": bic, "chosen": "◀" if k == chosen else ""}
         for k, bic in sorted(details["bic"].items())]
    )  # fmt: skip
    facts = [f"K = {chosen} has the lowest BIC of the {len(table)} candidate(s)"]
    if details.get("skipped_k"):
        facts.append(
            f"skipped K = {', '.join(map(str, details['skipped_k']))}: k-means gave a one-node "
            "block, which graspologic's estimators cannot fit"
        )
    if "likelihood" in details:
        path = html.escape(details["likelihood"])
        facts.append(f"likelihood: {LIKELIHOODS.get(path, path)} (<code>{path}</code>)")
    if "binarize_quantile" in details:
        facts.append(
            f"binarised at the {details['binarize_quantile']:g} quantile of the non-zero "
            f"affinities: {details['binary_edges']:,} undirected binary edges"
        )
    return "\n".join(
        [
            "<h2>Model selection</h2>",
            "<ul>" + "".join(f"<li>{fact}</li>" for fact in facts) + "</ul>",
            table.to_html(index=False, border=0, float_format="{:.1f}".format),
        ]
    )


def decoder_html(result: RoiResult) -> str:
    """Mean within-ROI decoder cosine per ROI, or why there is none (cross-prompt runs)."""
    if result.affinity.scope != "cross-prompt":
        return ""
    parts = ["<h2>Decoder directions</h2>"]
    cosine = result.decoder
    if cosine is None:
        parts.append(
            "<p>No decoder directions were given (<code>--decoders FILE</code>; the Neuronpedia "
            "graph files carry none), so the within-ROI decoder cosine is not computed.</p>"
        )
        return "\n".join(parts)
    mean = "n/a (no ROI has two members with a vector)" if cosine.mean is None else (
        f"{cosine.mean:.3f}"
    )  # fmt: skip
    sizes = np.bincount(result.labels, minlength=result.n_rois)
    parts.append(
        f"<p>from <code>{html.escape(cosine.source)}</code>: mean pairwise cosine of the members'"
        f" decoder vectors, weighted by members with a vector: <b>{mean}</b>; "
        f"{cosine.missing} of {result.affinity.n} features had no vector (skipped); ROIs with "
        "fewer than two vectors have none.</p>"
    )
    table = pd.DataFrame(
        {
            "roi": range(result.n_rois),
            "size": sizes,
            "with vector": cosine.with_vector,
            "mean cosine": [np.nan if v is None else v for v in cosine.per_roi],
        }
    )
    parts.append(table.to_html(index=False, border=0, float_format="{:.3f}".format, na_rep="–"))
    return "\n".join(parts)


def roi_html(result: RoiResult, quotient: CircuitGraph, *, written: bool) -> str:
    """The report. ``written`` (whether the run and its quotient graph were stored) has no
    default: the report must not claim a graph is in the store when it is not."""
    quality = pd.DataFrame(
        [{"measure": k, "value": v} for k, v in result.quality.items() if v is not None]
    )
    title = f"ROIs by {result.method} — {len(result.affinity.graph_ids)} graph(s)"
    if written:
        stored = f"stored as graph <code>{html.escape(quotient.graph_id)}</code>"
    else:
        stored = "not stored (computed with <code>--no-write</code>)"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:"
        "collapse;font-size:12px}td,th{padding:2px 8px;border-bottom:1px solid #ddd}"
        "img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>run <code>{html.escape(result.run_id)}</code>; {result.n_rois} ROIs over "
        f"{result.affinity.n} {'features' if result.affinity.scope == 'cross-prompt' else 'nodes'}"
        f" ({html.escape(result.affinity.kind)} affinity"
        + (
            f", features in at least {result.affinity.min_graphs} graphs"
            if result.affinity.min_graphs is not None
            else ""
        )
        + f"); parameters <code>{html.escape(json.dumps(result.used_params))}</code></p>",
        "<h2>Quality and stability</h2>",
        quality.to_html(index=False, border=0),
        model_selection_html(result),
        decoder_html(result),
        "<h2>Adjacency sorted by ROI</h2>",
        f"<img alt='sorted adjacency' src='data:image/png;base64,{sorted_adjacency_png(result)}'>",
        "<h2>Sizes and layers</h2>",
        f"<img alt='sizes and layers' src='data:image/png;base64,{sizes_and_layers_png(result)}'>",
        "<h2>Top members per ROI</h2>",
        top_members_table(result).to_html(index=False, border=0, float_format="{:.3g}".format),
        "<h2>Quotient graph</h2>",
        f"<p>{stored} ({quotient.n_nodes} nodes, {quotient.n_edges} edges)</p>",
        f"<img alt='quotient graph' src='data:image/png;base64,{quotient_png(quotient)}'>",
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part)
