"""EAP-IG's graph files and MIB circuit-track submissions, from a stored component graph.

- :func:`eap_ig_json` / :func:`write_eap_ig_json`: EAP-IG's ``Graph.to_json`` form (``cfg``,
  ``nodes`` with ``in_graph``, ``edges`` with ``score`` and ``in_graph``);
- :func:`write_eap_ig_pt`: its ``Graph.to_pt`` form (``[n_forward, n_backward]`` tensors in
  EAP-IG's slot order, which always has an MLP per layer: an attention-only model's MLP rows and
  columns are zero and out of the graph);
- :func:`write_mib_submission`: a MIB circuit-localization folder (name it ``<task>_<model>``,
  e.g. ``ioi_gpt2``): either ``importances.json`` (every edge's score) or nine circuits
  ``edges_<k>pct.json`` holding the top ``⌊k% · E⌋`` edges by |score| for k in
  :data:`MIB_PERCENTAGES`, ``E`` being every edge of the model (MIB's count).

Files are written whole or not at all (a temporary name, then a rename). The importers read
both forms back (``ingest/eap_ig.py``, ``ingest/eap_ig_pt.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.graph import CircuitGraph, NodeKind
from circuit_atlas.ingest.attribution.component_graph import ComponentGraph
from circuit_atlas.ingest.eap_ig_pt import dst_names

MIB_PERCENTAGES = (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50)
_COMPONENT_KINDS = {k.value for k in (NodeKind.INPUT, NodeKind.ATTENTION_HEAD, NodeKind.MLP)}


class EapArrays:
    """A component graph in EAP-IG's tensor layout: scores and membership per slot pair."""

    def __init__(self, graph: CircuitGraph) -> None:
        nodes = graph.nodes_frame()
        kinds = set(nodes["kind"])
        if not kinds <= _COMPONENT_KINDS | {NodeKind.LOGITS.value}:
            raise InvalidGraphError(
                f"{graph.graph_id}: EAP-IG files hold component graphs (input, heads, MLPs, "
                f"logits); this graph has {sorted(kinds - _COMPONENT_KINDS)} nodes"
            )
        extra = graph.metadata.extra
        heads = nodes[nodes["kind"] == NodeKind.ATTENTION_HEAD.value]
        layers = nodes["layer"].dropna()
        self.cfg: dict[str, Any] = {
            "n_layers": int(extra.get("n_layers") or (int(layers.max()) + 1 if len(layers) else 1)),
            "n_heads": int(
                extra.get("n_heads") or (int(heads["head"].max()) + 1 if len(heads) else 1)
            ),
            "parallel_attn_mlp": bool(extra.get("parallel_attn_mlp") or False),
            "d_model": extra.get("d_model"),
        }
        self.layout = ComponentGraph(
            self.cfg["n_layers"], self.cfg["n_heads"], True, self.cfg["parallel_attn_mlp"]
        )
        names = [_node_name(row) for row in nodes.itertuples()]
        forward = {name: i for i, name in enumerate(self.layout.forward_names)}
        backward = {name: i for i, name in enumerate(dst_names(self.layout))}
        shape = (self.layout.n_forward, self.layout.n_backward)
        self.scores = np.zeros(shape)
        self.in_graph = np.zeros(shape, dtype=bool)
        self.nodes_in_graph = np.zeros(self.layout.n_forward, dtype=bool)
        # node-level fields (EAP-IG's "score" and "neurons_scores"), when the graph has them
        self.node_fields: dict[str, dict[str, Any]] = {}
        for name, row in zip(names, nodes.to_dict("records")):
            fields = {}
            if isinstance(row.get("node_score"), float) and not np.isnan(row["node_score"]):
                fields["score"] = row["node_score"]
            if isinstance(row.get("neuron_scores"), (list, np.ndarray)):
                fields["neurons_scores"] = [float(v) for v in row["neuron_scores"]]
            if fields:
                self.node_fields[name] = fields
        if "in_graph" in nodes:
            for name, member in zip(names, nodes["in_graph"].fillna(False)):
                if name in forward:
                    self.nodes_in_graph[forward[name]] = bool(member)
        edges = graph.edges
        channels = edges["channel"].fillna("") if "channel" in edges else [""] * len(edges)
        members = edges["in_graph"].fillna(False) if "in_graph" in edges else [False] * len(edges)
        for source, target, weight, channel, member in zip(
            edges["source"], edges["target"], edges["weight"], channels, members
        ):
            dst = names[target] + (f"<{channel}>" if channel else "")
            f, k = forward.get(names[source]), backward.get(dst)
            if f is None or k is None or not self.layout.edge_mask[f, k]:
                raise InvalidGraphError(
                    f"{graph.graph_id}: edge {names[source]}->{dst} is not an edge of EAP-IG's "
                    f"graph of {self.cfg['n_layers']} layers × {self.cfg['n_heads']} heads"
                )
            self.scores[f, k] = weight
            self.in_graph[f, k] = bool(member)

    def json_document(self, in_graph: np.ndarray | None = None) -> dict[str, Any]:
        """EAP-IG's ``to_json`` form; ``in_graph`` overrides edge membership (nodes follow)."""
        members = self.in_graph if in_graph is None else in_graph
        nodes_in = self.nodes_in_graph if in_graph is None else self._touched(members)
        forward, backward = self.layout.edges()
        logits_in = bool(members[:, self.layout.logits_backward_slot].any())
        return {
            "cfg": self.cfg,
            "nodes": {
                **{
                    n: {"in_graph": bool(v), **self.node_fields.get(n, {})}
                    for n, v in zip(self.layout.forward_names, nodes_in)
                },
                "logits": {"in_graph": logits_in},
            },
            "edges": {
                self.layout.edge_name(f, k): {
                    "score": float(self.scores[f, k]),
                    "in_graph": bool(members[f, k]),
                }
                for f, k in zip(forward, backward)
            },
        }

    def top_edges(self, count: int) -> np.ndarray:
        """Membership of the ``count`` edges of largest |score| (ties: EAP-IG's slot order)."""
        forward, backward = self.layout.edges()
        magnitude = np.abs(self.scores[forward, backward])
        chosen = np.argsort(-magnitude, kind="stable")[:count]
        members = np.zeros_like(self.in_graph)
        members[forward[chosen], backward[chosen]] = True
        return members

    def _touched(self, members: np.ndarray) -> np.ndarray:
        node_of = self.layout.node_of_backward()
        touched = members.any(axis=1)
        for k in np.nonzero(members.any(axis=0))[0]:
            target = int(node_of[k])
            if target < self.layout.n_forward:  # logits is not a forward node
                touched[target] = True
        return touched


def _node_name(row: Any) -> str:
    kind = row.kind
    if kind == NodeKind.ATTENTION_HEAD.value:
        return f"a{int(row.layer)}.h{int(row.head)}"
    if kind == NodeKind.MLP.value:
        return f"m{int(row.layer)}"
    return str(kind)  # input, logits


def eap_ig_json(graph: CircuitGraph) -> dict[str, Any]:
    return EapArrays(graph).json_document()


def write_eap_ig_json(graph: CircuitGraph, path: Path) -> Path:
    return _write_json(eap_ig_json(graph), Path(path))


def write_eap_ig_pt(graph: CircuitGraph, path: Path) -> Path:
    """EAP-IG's ``Graph.to_pt`` dict: plain tensors, lists and a dict, so ``torch.load`` with
    ``weights_only=True`` (torch's default) reads it. Scores are float64, so nothing is lost;
    ``Graph.from_pt`` copies them into its own (float32) tensor."""
    import torch

    arrays = EapArrays(graph)
    document = {
        "cfg": arrays.cfg,
        "src_nodes": list(arrays.layout.forward_names),
        "dst_nodes": dst_names(arrays.layout),
        "edges_scores": torch.from_numpy(arrays.scores),  # float64: lossless; EAP-IG casts
        "edges_in_graph": torch.from_numpy(arrays.in_graph),
        "nodes_in_graph": torch.from_numpy(arrays.nodes_in_graph),
    }
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    torch.save(document, partial)
    partial.replace(path)
    return path


def write_mib_submission(graph: CircuitGraph, folder: Path, *, circuits: bool) -> list[Path]:
    """MIB's circuit-track files for ``graph`` in ``folder``: ``importances.json``, or with
    ``circuits`` the nine ``edges_<k>pct.json``. Returns the paths written."""
    arrays = EapArrays(graph)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not circuits:
        return [_write_json(arrays.json_document(), folder / "importances.json")]
    total = arrays.layout.n_edges
    written = []
    for percent in MIB_PERCENTAGES:
        members = arrays.top_edges(int(percent / 100 * total))
        name = f"edges_{percent:g}pct.json"
        written.append(_write_json(arrays.json_document(members), folder / name))
    return written


def _write_json(document: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(document))
    partial.replace(path)
    return path
