"""Build the self-contained attribution-graph page (:func:`render_view_page`).

Why a single file: researchers pass graphs around as attachments and open them from disk, and a
page that fetches nothing cannot leak what it shows nor break when a CDN goes away. So the
script (``assets/viewer.js``), the style (``assets/viewer.css``) and the graph are inlined, and a
Content-Security-Policy allows only that one script (by hash) and no network at all.

Why the data goes in as JSON text and the page writes labels with ``textContent``: node labels
come from other tools and from people (Neuronpedia explanations), so any of them may hold markup.
JSON inside ``<script type="application/json">`` is never executed, and escaping ``<``, ``>`` and
``&`` as ``\\u003c``… keeps ``</script>`` or ``<!--`` in a label from ending that element early;
the script then never parses a label as HTML. Only the ``<title>`` is written here, escaped.

What the page gets, and why it is computed here rather than in the browser:

* the strongest ``max_edges`` edges by ``|weight|`` (a million-edge graph would make the page
  unusable), sorted weakest first, so the edge slider hides a prefix and the strongest edges are
  drawn on top; the page says how many were left out;
* ``hideOrder``: the node rows the node slider hides first, least influential first. With an
  ``influence`` column (Neuronpedia / circuit-tracer files store each node's *cumulative share*
  of influence, so smaller means more influential) that order is influence descending; without
  one it is total ``|weight|`` of the node's edges (all of them, not only the kept ones),
  ascending. Embeddings and logits are never hidden, as in circuit-tracer's pruning, and neither
  are pinned nodes.

The two sliders are percentiles (0–100): the node threshold ``p`` hides the ``p``% of
``hideOrder`` that comes first; the edge threshold ``p`` hides the edges below the ``p``-th
percentile of ``|weight|`` among the edges in the page (and any edge whose end is hidden). The
edge slider starts where about ``DEFAULT_SHOWN_EDGES`` edges show; the node slider at 0.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.graph import CircuitGraph, NodeKey, NodeKind

DEFAULT_MAX_EDGES = 20_000
# How many of the strongest edges the page shows before the reader moves the edge slider: enough
# to see the main paths, few enough not to hide them in a hairball.
DEFAULT_SHOWN_EDGES = 400
# Kinds the node slider never hides: the ends every path runs between.
ALWAYS_SHOWN_KINDS = frozenset(
    {NodeKind.EMBEDDING.value, NodeKind.LOGIT.value, NodeKind.INPUT.value, NodeKind.LOGITS.value}
)
GROUP_KIND_TITLES = {"supernode": "Supernodes", "roi": "ROIs"}


def render_view_page(
    graph: CircuitGraph,
    *,
    pinned: Sequence[str] = (),
    groups: Mapping[str, Sequence[str]] | None = None,
    group_kind: str = "supernode",
    title: str | None = None,
    max_edges: int = DEFAULT_MAX_EDGES,
) -> str:
    """The complete HTML document showing ``graph``.

    ``pinned`` and the values of ``groups`` are encoded node keys (``NodeKey.encode()``). A pinned
    key the graph lacks is an error (a typo should not pass unnoticed); group members the graph
    lacks are left out and the page says how many (a Neuronpedia supernode may name nodes that
    pruning removed). ``group_kind`` names the groups in the legend (``"supernode"``, ``"roi"``).
    """
    if max_edges < 0:
        raise ValueError(f"max_edges must be at least 0, not {max_edges}")
    heading = title if title is not None else f"{graph.graph_id} — attribution graph"
    data = page_data(
        graph,
        pinned=pinned,
        groups=groups,
        group_kind=group_kind,
        title=heading,
        max_edges=max_edges,
    )
    return _document(heading, script_json(data), _asset("viewer.js"), _asset("viewer.css"))


def page_data(
    graph: CircuitGraph,
    *,
    pinned: Sequence[str] = (),
    groups: Mapping[str, Sequence[str]] | None = None,
    group_kind: str = "supernode",
    title: str = "",
    max_edges: int = DEFAULT_MAX_EDGES,
) -> dict[str, Any]:
    """Everything the page's script reads, as JSON-ready values (``None`` for missing numbers)."""
    keys = graph.keys()
    encoded = [key.encode() for key in keys]
    edges = _strongest_edges(graph, max_edges)
    group_list, missing = _groups(graph, groups or {})
    meta = graph.metadata
    return {
        "title": title,
        "graph": {
            "id": graph.graph_id,
            "model": meta.model,
            "prompt": meta.prompt,
            "tokens": list(meta.tokens),
        },
        "nodes": _nodes(graph, keys, encoded),
        "edges": edges,
        "edgesInGraph": graph.n_edges,
        "importance": _importance_name(graph),
        "hideOrder": _hide_order(graph),
        "pinned": _pinned(graph, pinned),
        "groups": group_list,
        "groupKind": group_kind,
        "groupTitle": GROUP_KIND_TITLES.get(group_kind, f"{group_kind} groups"),
        "groupMembersMissing": missing,
        "defaults": {"nodeThreshold": 0, "edgeThreshold": default_edge_threshold(len(edges))},
    }


def script_json(value: Any) -> str:
    """JSON safe to place between ``<script …>`` and ``</script>``: ``<``, ``>`` and ``&`` are
    written as ``\\u003c``/``\\u003e``/``\\u0026``, which JSON.parse reads back unchanged."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def default_edge_threshold(n_edges: int) -> float:
    """The edge slider's starting percentile: shows about ``DEFAULT_SHOWN_EDGES`` edges (at least
    that many), on the slider's 0.1 steps."""
    if n_edges <= DEFAULT_SHOWN_EDGES:
        return 0.0
    return math.floor(1000 * (n_edges - DEFAULT_SHOWN_EDGES) / n_edges) / 10


# ---------------------------------------------------------------------------------------- data


def _number(value: Any) -> float | None:
    """A finite float, or None for NaN / NA / None."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _nodes(graph: CircuitGraph, keys: list[NodeKey], encoded: list[str]) -> list[dict[str, Any]]:
    """One record per node row, in row order (edges refer to nodes by row)."""
    table = graph.nodes
    labels, tokens = table["label"].tolist(), table["token"].tolist()
    activations, influences = table["activation"].tolist(), table["influence"].tolist()
    return [
        {
            "key": encoded[row],
            "id": key.display_id(),
            "kind": key.kind,
            "layer": key.layer,
            "pos": key.pos,
            "label": _text(labels[row]),
            "token": _text(tokens[row]),
            "activation": _number(activations[row]),
            "influence": _number(influences[row]),
        }
        for row, key in enumerate(keys)
    ]


def _strongest_edges(graph: CircuitGraph, max_edges: int) -> list[list[float]]:
    """``[source_row, target_row, weight]`` of the ``max_edges`` strongest edges by ``|weight|``,
    weakest first (parallel edges of different channels are kept apart, as stored)."""
    weights = graph.edges["weight"].to_numpy(dtype=np.float64)
    order = np.argsort(np.abs(weights), kind="stable")
    kept = order[len(order) - max_edges :] if max_edges else order[:0]
    sources = graph.edges["source"].to_numpy()[kept].tolist()
    targets = graph.edges["target"].to_numpy()[kept].tolist()
    return [[s, t, float(f"{w:.6g}")] for s, t, w in zip(sources, targets, weights[kept].tolist())]


def _importance_name(graph: CircuitGraph) -> str:
    """What ranks nodes for the node slider: ``influence`` when any node has one."""
    return "influence" if graph.nodes["influence"].notna().any() else "strength"


def _hide_order(graph: CircuitGraph) -> list[int]:
    """Rows the node slider may hide, least influential first (see the module docstring)."""
    kinds = graph.nodes["kind"].to_numpy(dtype=object)
    rows = np.flatnonzero([kind not in ALWAYS_SHOWN_KINDS for kind in kinds])
    if _importance_name(graph) == "influence":
        influence = graph.nodes["influence"].to_numpy(dtype=np.float64, na_value=np.nan)[rows]
        # larger cumulative share = less influential; a node without one goes first
        badness = np.where(np.isnan(influence), np.inf, influence)
        order = np.argsort(-badness, kind="stable")
    else:
        strength = _edge_strength(graph)[rows]
        order = np.argsort(strength, kind="stable")
    return rows[order].tolist()


def _edge_strength(graph: CircuitGraph) -> np.ndarray:
    """Each node's total ``|weight|`` over its incoming and outgoing edges."""
    weights = np.abs(graph.edges["weight"].to_numpy(dtype=np.float64))
    strength = np.zeros(graph.n_nodes)
    np.add.at(strength, graph.edges["source"].to_numpy(), weights)
    np.add.at(strength, graph.edges["target"].to_numpy(), weights)
    return strength


def _decode(encoded_key: str) -> NodeKey:
    """The key ``NodeKey.encode()`` wrote; InvalidGraphError for text it cannot have written."""
    try:
        return NodeKey.decode(encoded_key)
    except ValueError:  # a field that is not an integer
        raise InvalidGraphError(f"malformed node key {encoded_key!r}") from None


def _row_of(graph: CircuitGraph, encoded_key: str) -> int:
    """Row of a node named by its encoded key; InvalidGraphError naming it when there is none."""
    return graph.index_of(_decode(encoded_key))


def _pinned(graph: CircuitGraph, pinned: Sequence[str]) -> list[str]:
    """The pinned keys, checked and without repeats, in the order given."""
    if isinstance(pinned, str):
        raise TypeError("pinned must be a sequence of node keys, not one string")
    for key in pinned:
        _row_of(graph, key)
    return list(dict.fromkeys(pinned))


def _groups(
    graph: CircuitGraph, groups: Mapping[str, Sequence[str]]
) -> tuple[list[dict[str, Any]], int]:
    """``[{label, members: [row, …]}]`` in the mapping's order, and how many member keys the
    graph lacks (malformed keys are errors: they cannot come from a node of any graph)."""
    result: list[dict[str, Any]] = []
    missing = 0
    for label, members in groups.items():
        if isinstance(members, str):
            raise TypeError(f"group {label!r}: members must be a sequence of node keys")
        rows: list[int] = []
        for key in members:
            decoded = _decode(key)
            try:
                rows.append(graph.index_of(decoded))
            except InvalidGraphError:
                missing += 1
        result.append({"label": str(label), "members": list(dict.fromkeys(rows))})
    return result, missing


# ------------------------------------------------------------------------------------ document


@cache
def _asset(name: str) -> str:
    """A file of ``assets/``; it must not be able to end its own element early."""
    text = (resources.files("circuit_atlas.viewer") / "assets" / name).read_text("utf-8")
    if "</script" in text.lower() or "</style" in text.lower():
        raise RuntimeError(f"viewer asset {name} contains a closing tag")
    return text


def _csp(script: str) -> str:
    """Allow only the inlined script (by hash) and inline style; no request of any kind."""
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )


_BODY = """<header>
<h1 id="page-title"></h1>
<p id="subtitle"></p>
<p id="notice" hidden></p>
<noscript><p>This page draws the graph with JavaScript; please enable it.</p></noscript>
</header>
<main>
<div id="graph-pane">
<svg id="graph" role="img" aria-label="attribution graph"></svg>
<div id="hover-card" hidden></div>
</div>
<aside id="side">
<section id="controls">
<h2>Filters</h2>
<label for="node-threshold">Node threshold <output id="node-threshold-value"></output></label>
<input type="range" id="node-threshold" min="0" max="100" step="1" value="0">
<p class="hint" id="node-threshold-hint"></p>
<label for="edge-threshold">Edge threshold <output id="edge-threshold-value"></output></label>
<input type="range" id="edge-threshold" min="0" max="100" step="0.1" value="0">
<p class="hint" id="edge-threshold-hint"></p>
<p id="counts"><span id="node-count"></span><br><span id="edge-count"></span></p>
</section>
<section id="legend"><h2>Legend</h2></section>
<section id="pinned-panel">
<h2>Pinned <span id="pinned-count"></span></h2>
<p class="hint">Click a node to pin or unpin it.</p>
<ol id="pinned-list"></ol>
<div class="buttons">
<button type="button" id="copy-pinned">copy as score --pinned</button>
<button type="button" id="clear-pinned">clear</button>
</div>
<textarea id="pinned-command" readonly rows="4" spellcheck="false"
 placeholder="pin nodes, then copy the command"></textarea>
<p class="hint" id="copy-status" aria-live="polite"></p>
</section>
</aside>
</main>
"""


def _document(title: str, data_json: str, script: str, style: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_csp(script)}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n"
        '<link rel="icon" href="data:,">\n'
        f"<style>\n{style}</style>\n</head>\n<body>\n{_BODY}"
        f'<script type="application/json" id="graph-data">{data_json}</script>\n'
        f"<script>{script}</script>\n</body>\n</html>\n"
    )
