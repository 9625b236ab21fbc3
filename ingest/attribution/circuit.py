"""Choosing a circuit from edge scores: top-n, threshold, or greedy growth from the logits.

Every selection ends with :func:`prune_dangling`: an edge stays only if its source is reachable
from ``input`` and its target reaches ``logits`` through selected edges, because an edge on no
input→logits path cannot carry anything the metric sees. A circuit is an ``[n_forward,
n_backward]`` boolean mask over :class:`~.component_graph.ComponentGraph` edges.
"""

from __future__ import annotations

import heapq

import numpy as np

from circuit_atlas.errors import CircuitAtlasError
from circuit_atlas.ingest.attribution.component_graph import ComponentGraph

SELECTIONS = ("topn", "threshold", "greedy")


def select(graph: ComponentGraph, scores: np.ndarray, how: str, amount: float) -> np.ndarray:
    """``how`` = ``topn`` (``amount`` edges), ``threshold`` (|score| ≥ ``amount``) or ``greedy``
    (``amount`` edges grown from the logits); then :func:`prune_dangling`."""
    if how == "topn":
        chosen = top_n(graph, scores, int(amount))
    elif how == "threshold":
        chosen = (np.abs(scores) >= amount) & graph.edge_mask
    elif how == "greedy":
        chosen = greedy(graph, scores, int(amount))
    else:
        raise CircuitAtlasError(f"unknown selection {how!r}: choose one of {', '.join(SELECTIONS)}")
    return prune_dangling(graph, chosen)


def top_n(graph: ComponentGraph, scores: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` edges of largest |score| (ties broken by edge order, so it is deterministic)."""
    if n < 0:
        raise CircuitAtlasError("the number of edges must be ≥ 0")
    forward, backward = graph.edges()
    magnitude = np.abs(scores[forward, backward])
    order = np.argsort(-magnitude, kind="stable")[:n]
    chosen = np.zeros_like(graph.edge_mask)
    chosen[forward[order], backward[order]] = True
    return chosen


def greedy(graph: ComponentGraph, scores: np.ndarray, n: int) -> np.ndarray:
    """Grow from ``logits``: repeatedly add the largest-|score| edge into a node already in the
    circuit (its source joins the circuit), until ``n`` edges."""
    node_of_backward = graph.node_of_backward()
    backward_of_node: dict[int, list[int]] = {}
    for k, node in enumerate(node_of_backward):
        backward_of_node.setdefault(int(node), []).append(k)
    logits_node = len(graph.node_names) - 1
    chosen = np.zeros_like(graph.edge_mask)
    in_circuit = {logits_node}
    frontier: list[tuple[float, int, int]] = []

    def open_node(node: int) -> None:
        for k in backward_of_node.get(node, []):
            for f in range(int(graph.upstream[k])):
                heapq.heappush(frontier, (-abs(float(scores[f, k])), f, k))

    open_node(logits_node)
    while frontier and int(chosen.sum()) < n:
        _, f, k = heapq.heappop(frontier)
        if chosen[f, k]:
            continue
        chosen[f, k] = True
        if f not in in_circuit:  # forward slot f is node f in node_names
            in_circuit.add(f)
            open_node(f)
    return chosen


def prune_dangling(graph: ComponentGraph, chosen: np.ndarray) -> np.ndarray:
    """Keep edges whose source is reachable from ``input`` and whose target reaches ``logits``."""
    node_of_backward = graph.node_of_backward()
    n_nodes = len(graph.node_names)
    forward, backward = np.nonzero(chosen)
    targets = node_of_backward[backward]
    order = np.argsort(targets, kind="stable")  # node order is topological
    reached = np.zeros(n_nodes, dtype=bool)
    reached[0] = True
    for f, t in zip(forward[order], targets[order]):
        if reached[f]:
            reached[t] = True
    reaches_logits = np.zeros(n_nodes, dtype=bool)
    reaches_logits[n_nodes - 1] = True
    for f, t in zip(forward[order][::-1], targets[order][::-1]):
        if reaches_logits[t]:
            reaches_logits[f] = True
    keep = reached[forward] & reaches_logits[targets]
    pruned = np.zeros_like(chosen)
    pruned[forward[keep], backward[keep]] = True
    return pruned


def circuit_nodes(graph: ComponentGraph, chosen: np.ndarray) -> set[str]:
    """Names of the nodes touched by a circuit's edges."""
    forward, backward = np.nonzero(chosen)
    names = {graph.forward_names[f] for f in forward}
    names |= {graph.backward_names[k] for k in backward}
    return names
