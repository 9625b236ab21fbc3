"""The view a Neuronpedia file opens with, read from the store: a named subgraph (its pinned
nodes and supernodes) or an ROI run (its ROIs as supernodes: automatic supernodes).

Both become a :class:`~circuit_atlas.exporters.neuronpedia.SavedView` of node keys, so the
exporter maps them to the file's node ids in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.exporters.neuronpedia import SavedView
from circuit_atlas.graph import CircuitGraph

if TYPE_CHECKING:
    from circuit_atlas.store import CircuitStore

MAX_LABEL = 60  # Neuronpedia shows supernode labels in a narrow box


def subgraph_view(store: CircuitStore, graph_id: str, name: str) -> SavedView:
    """The stored subgraph ``name`` of ``graph_id`` (``score --pinned … --name``) as a view."""
    row = store.subgraph(graph_id, name)
    groups = [(group["label"], list(group["members"])) for group in row["supernodes"]]
    return SavedView(list(row["members"]), groups)


def roi_view(store: CircuitStore, graph: CircuitGraph, run_id: str) -> SavedView:
    """Every ROI of ``run_id`` with members in ``graph`` as a supernode, labelled by its index
    and the label of its most influential labelled member (what a person would call it)."""
    groups = store.roi_groups(run_id, graph.graph_id)
    if not any(group["members"] for group in groups):
        raise CircuitAtlasError(
            f"ROI run {run_id!r} has no members in graph {graph.graph_id!r}: it was computed on "
            "other graphs (its ROIs' graph_ids say which)"
        )
    labels = _labels_by_key(graph)
    supernodes = [
        (_roi_label(group["index"], group["members"], labels), list(group["members"]))
        for group in groups
        if group["members"]
    ]
    pinned = [key for _, members in supernodes for key in members]
    return SavedView(pinned, supernodes)


def _labels_by_key(graph: CircuitGraph) -> dict[str, tuple[float, str]]:
    """``node key → (influence, label)`` for nodes with a label (influence 0 when unknown)."""
    out = {}
    for key, label, influence in zip(graph.keys(), graph.nodes["label"], graph.nodes["influence"]):
        if isinstance(label, str) and label:
            value = 0.0 if influence is None or pd.isna(influence) else abs(float(influence))
            out[key.encode()] = (value, label)
    return out


def _roi_label(index: int, members: list[str], labels: dict[str, tuple[float, str]]) -> str:
    named = [labels[key] for key in members if key in labels]
    if not named:
        return f"ROI {index}"
    label = max(named, key=lambda pair: pair[0])[1]
    text = f"ROI {index}: {label}"
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"
