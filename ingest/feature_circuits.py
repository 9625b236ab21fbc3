"""feature-circuits' saved circuits (Marks et al. 2024, "Sparse Feature Circuits").

Why an importer of its own: a sparse feature circuit is a graph of SAE features and SAE error
terms at every site (embedding, attention output, MLP output and residual stream of each layer)
with node and edge effects on a metric, which is none of the other formats read here. The file
is what ``circuit.py`` of github.com/saprmarks/feature-circuits writes; the layout below was read
from its source at commit 1d87366c758c484bd5c419af1b92f6ec0678046e (2025-03-01: ``circuit.py``,
``attribution.py``, ``activation_utils.py``, ``circuit_plotting.py``) and agrees with the paper's
version (commit 5026f7a, 2024-03-28).

The saved format, ``torch.save({"examples": examples, "nodes": nodes, "edges": edges}, path)``:

* ``examples``: the list of examples (dicts of strings: ``clean_prefix``, ``clean_answer`` and
  for paired data ``patch_prefix``, ``patch_answer``) the effects are averaged over.
* ``nodes``: submodule name → ``activation_utils.SparseAct`` (a plain class, pickled by that
  module path and qualname) holding the *effects* (indirect effects, integrated gradients) of
  that submodule's nodes: ``act`` one per SAE feature, ``resc`` the error term contracted to one
  number (``res``, the uncontracted term, is ``None``). Names: ``embed`` (only if the model's
  embedding has an SAE: Pythia yes, Gemma no), ``attn_L``, ``mlp_L``, ``resid_L``. With
  ``aggregation="sum"`` (summed over positions, averaged over examples) ``act`` is ``[d_dict]``
  and ``resc`` ``[1]``; with ``"none"`` (averaged over examples only) ``[n_pos, d_dict]`` and
  ``[n_pos, 1]``. Node index ``d_dict`` (the last) is the error node: ``SparseAct.to_tensor()``
  appends ``resc`` to ``act``. The metric ``y`` (the total effect) is *not* saved: the script
  keeps every node but ``y`` (a ``y`` tensor is read if present).
* ``edges``: ``edges[upstream][downstream]`` (outer key upstream: ``edges["mlp_0"]["resid_0"]``
  is MLP 0 → residual 0), sparse COO tensors, *downstream dimensions first*:
  ``[d_down + 1, d_up + 1]`` with ``"sum"``, ``[n_pos, d_down + 1, n_pos, d_up + 1]`` with
  ``"none"`` (``circuit_plotting`` reads ``edges[up][down][down_idx][up_idx]``). The edges into
  ``y`` come from the last residual: ``edges["resid_{n_layers-1}"]["y"]`` is ``[d_up + 1]``
  or ``[n_pos, d_up + 1]``. Edges run ``embed``/``resid_{L-1}`` → ``attn_L``, ``mlp_L``,
  ``resid_L``; ``attn_L`` → ``mlp_L`` (unless attention and MLP are parallel, as in Pythia);
  ``attn_L``, ``mlp_L`` → ``resid_L``. Since commit 8115707 (2025-01-20) the tensors are
  hybrid (sparse over the downstream dimensions, values dense over the upstream ones, as the
  sums of the jvp's ``[b, pos, d+1, b, pos, d+1]`` tensor leave them); before, fully sparse
  (``sparse_reshape``); both are read. ``edges`` is ``None`` when only nodes were computed
  (``--nodes_only``).

Neither threshold is saved (the node threshold chose which downstream nodes got edges); the
script's file names carry them (``…_node0.1.pt``), and they are recorded from there if present.

The graph: a node per feature or error with a non-zero effect or a non-zero edge, kinds
``{site}_feature`` / ``{site}_error`` (``pos`` None when summed over positions, ``layer`` None
for the embedding), plus one ``logits`` node for ``y``; the effect is the node column
``node_effect``; every non-zero saved edge effect is an edge upstream → downstream.

The file is read by the restricted unpickler (:mod:`circuit_atlas.ingest.safe_torch`);
``SparseAct`` becomes :class:`SparseActRecord`, a plain holder of its three tensors, so no code
of feature-circuits is imported and none in the file runs.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.graph import CircuitGraph, GraphMetadata, NodeKind
from circuit_atlas.ingest.importers import (
    Importer,
    file_stem,
    register,
    register_pt_stand_ins,
)
from circuit_atlas.ingest.safe_torch import load_torch_file

if TYPE_CHECKING:
    import torch

FORMAT_NAME = "feature-circuits"
REQUIRED_KEYS = frozenset({"examples", "nodes", "edges"})
METRIC = "y"  # feature-circuits' name for the metric node
_SUBMODULE = re.compile(r"(embed)|(attn|mlp|resid)_([0-9]{1,6})")
_SITE_ORDER = {"attn": 1, "mlp": 2, "resid": 3}  # within a layer; the embedding comes first
_THRESHOLD = re.compile(r"_(node|edge)([0-9]+(?:\.[0-9]+)?(?:e-?[0-9]+)?)(?=_|$)")
_MAX_EXAMPLE_TEXT = 1000  # characters of the first example kept in the metadata


class SparseActRecord:
    """Stand-in for feature-circuits' ``activation_utils.SparseAct``: its three fields only.

    Built by the unpickler as ``SparseAct`` is pickled (``__new__`` then ``__setstate__`` with
    its ``__dict__``); anything else in the state is refused, so a file cannot set other
    attributes (``__class__``, methods) on it, and the fields are tensors or None.
    """

    FIELDS = ("act", "res", "resc")
    act: torch.Tensor | None = None  # None until the file sets it
    res: torch.Tensor | None = None
    resc: torch.Tensor | None = None

    def __init__(
        self,
        act: torch.Tensor | None = None,
        res: torch.Tensor | None = None,
        resc: torch.Tensor | None = None,
    ) -> None:
        self.__setstate__({"act": act, "res": res, "resc": resc})

    def __setstate__(self, state: Any) -> None:
        import torch

        if not isinstance(state, dict) or not set(state) <= set(self.FIELDS):
            raise ValueError("a SparseAct whose state is not its act/res/resc fields")
        for name in self.FIELDS:
            value = state.get(name)
            if value is not None and not isinstance(value, torch.Tensor):
                raise ValueError(f"a SparseAct whose {name} is a {type(value).__name__}")
            setattr(self, name, value)


STAND_INS: dict[tuple[str, str], Any] = {("activation_utils", "SparseAct"): SparseActRecord}
register_pt_stand_ins(STAND_INS)


def read_feature_circuits(path: str | Path) -> Any:
    """The saved dict, read without running code from the file (one-line errors name it)."""
    return load_torch_file(
        path, stand_ins=STAND_INS, expected="part of a feature-circuits saved circuit"
    )


# ------------------------------------------------------------------ submodules and nodes
@dataclass(frozen=True)
class Submodule:
    """One SAE site as feature-circuits names it (``resid_3``), and where it sits."""

    name: str
    site: str  # embed, attn, mlp or resid
    layer: int | None  # None for the embedding

    @property
    def order(self) -> int:
        """Rank in the forward pass: embedding, then attn, mlp, resid of each layer."""
        return 0 if self.layer is None else 3 * self.layer + _SITE_ORDER[self.site]


def submodule(name: Any, where: str) -> Submodule:
    match = _SUBMODULE.fullmatch(name) if isinstance(name, str) else None
    if match is None:
        shown = repr(name)[:60]
        raise InvalidGraphError(
            f"{where}: unknown submodule {shown} (feature-circuits names embed, attn_L, mlp_L, "
            "resid_L and y)"
        )
    if match[1]:
        return Submodule(name, "embed", None)
    return Submodule(name, match[2], int(match[3]))


@dataclass
class SiteEffects:
    """A submodule's node effects as feature-circuits' ``to_tensor()``: ``[..., d_dict + 1]``,
    features then the error; ``[n_nodes]`` summed over positions, else ``[n_pos, n_nodes]``."""

    module: Submodule
    values: np.ndarray

    @property
    def n_nodes(self) -> int:
        return self.values.shape[-1]


def _finite_array(tensor: torch.Tensor, where: str) -> np.ndarray:
    import torch

    if not (tensor.is_floating_point() and tensor.layout == torch.strided):
        found = f"{tensor.dtype}" + ("" if tensor.layout == torch.strided else f", {tensor.layout}")
        raise InvalidGraphError(f"{where}: expected a dense float tensor, found {found}")
    array = tensor.detach().to("cpu", torch.float64).numpy()
    if not np.isfinite(array).all():
        raise InvalidGraphError(f"{where}: NaN or infinite effects")
    return array


def site_effects(module: Submodule, value: Any) -> SiteEffects:
    """``nodes[name]`` (a SparseAct of effects) as one array, checked."""
    where = f"nodes[{module.name!r}]"
    if not isinstance(value, SparseActRecord) or value.act is None:
        raise InvalidGraphError(f"{where}: expected a SparseAct of node effects")
    if value.resc is None:
        raise InvalidGraphError(
            f"{where}: no contracted error term (resc); saved circuits hold one per site"
        )
    act = _finite_array(value.act, f"{where}.act")
    resc = _finite_array(value.resc, f"{where}.resc")
    if act.ndim not in (1, 2) or act.shape[-1] == 0:
        raise InvalidGraphError(
            f"{where}.act: shape {act.shape}, expected [d_dict] or [n_pos, d_dict]"
        )
    if resc.shape not in (act.shape[:-1] + (1,), act.shape[:-1]):
        raise InvalidGraphError(
            f"{where}.resc: shape {resc.shape} does not match act {act.shape} (one error per "
            "position)"
        )
    values = np.concatenate([act, resc.reshape(act.shape[:-1] + (1,))], axis=-1)
    return SiteEffects(module, values)


def read_nodes(nodes: Any) -> tuple[dict[str, SiteEffects], str, float | None]:
    """Every submodule's effects, the aggregation they share, and ``y``'s effect if saved."""
    if not isinstance(nodes, dict):
        raise InvalidGraphError(f"nodes: expected a dict of SparseActs, found {_type(nodes)}")
    sites = {
        name: site_effects(submodule(name, "nodes"), value)
        for name, value in nodes.items()
        if name != METRIC
    }
    if not sites:
        raise InvalidGraphError("nodes: no submodule's effects (embed, attn_L, mlp_L, resid_L)")
    shapes = {site.values.shape[:-1] for site in sites.values()}
    if len(shapes) > 1:
        found = ", ".join(f"{n}: {s.values.shape}" for n, s in list(sites.items())[:4])
        raise InvalidGraphError(
            f"nodes: effects of different layouts ({found}); all are summed over positions, "
            "or none is, over the same positions"
        )
    aggregation = "sum" if shapes == {()} else "none"
    return sites, aggregation, metric_effect(nodes.get(METRIC))


def metric_effect(value: Any) -> float | None:
    """``y``'s total effect: a scalar, or one per example (averaged, as feature-circuits
    averages every other node over examples); None when not saved."""
    import torch

    if value is None:
        return None
    if not isinstance(value, torch.Tensor) or value.ndim > 1 or value.numel() == 0:
        raise InvalidGraphError("nodes['y']: expected the metric's total effect (a scalar tensor)")
    return float(_finite_array(value, "nodes['y']").mean())


# ------------------------------------------------------------------ edges
@dataclass
class EdgeBlock:
    """The non-zero entries of one ``edges[up][down]``: flat node indices into each side's
    ``SiteEffects.values`` (``down`` is empty for ``y``), and the weights."""

    up: str
    down: str
    up_index: np.ndarray
    down_index: np.ndarray
    weights: np.ndarray


def expected_shape(up: SiteEffects, down: SiteEffects | None) -> tuple[int, ...]:
    """``edges[up][down]``'s shape: downstream dimensions first, then upstream, each side as
    its node effects (``[n_nodes]`` or ``[n_pos, n_nodes]``); ``y`` has none."""
    down_side = () if down is None else down.values.shape
    return down_side + up.values.shape


def nonzero_entries(tensor: Any, shape: tuple[int, ...], where: str) -> tuple[np.ndarray, ...]:
    """Coordinates (one array per dimension) and weights of a sparse COO or dense tensor's
    non-zero entries; duplicate COO entries are summed (COO semantics)."""
    import torch

    if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape:
        found = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else _type(tensor)
        raise InvalidGraphError(
            f"{where}: expected a tensor of shape {shape} ([downstream…, upstream…] nodes, "
            f"errors last), found {found}"
        )
    if tensor.layout == torch.strided:
        dense = _finite_array(tensor, where)
        coords = np.nonzero(dense)
        return (*coords, dense[coords])
    if tensor.layout != torch.sparse_coo:
        raise InvalidGraphError(f"{where}: a {tensor.layout} tensor; expected sparse COO")
    indices = tensor._indices().to("cpu")  # indices() refuses an uncoalesced tensor
    bounds = torch.tensor(shape[: indices.shape[0]], dtype=torch.int64).unsqueeze(1)
    if ((indices < 0) | (indices >= bounds)).any():
        raise InvalidGraphError(f"{where}: negative or out-of-range indices for shape {shape}")
    tensor = tensor.coalesce()
    values = _finite_array(tensor.values(), where)
    flat = values.reshape(values.shape[0], math.prod(values.shape[1:]))
    rows, columns = np.nonzero(flat)
    dense_coords = np.unravel_index(columns, values.shape[1:]) if values.ndim > 1 else ()
    sparse_coords = tensor.indices().numpy()[:, rows]
    return (*sparse_coords, *dense_coords, flat[rows, columns])


def edge_block(up: SiteEffects, down: SiteEffects | None, tensor: Any) -> EdgeBlock:
    """One ``edges[up][down]``, checked: forward, of the shape its nodes give, finite."""
    down_name = METRIC if down is None else down.module.name
    where = f"edges[{up.module.name!r}][{down_name!r}]"
    if down is not None and down.module.order <= up.module.order:
        raise InvalidGraphError(
            f"{where}: runs from {up.module.name} back to {down_name}; edges[upstream]"
            "[downstream] runs forward"
        )
    shape = expected_shape(up, down)
    *coords, weights = nonzero_entries(tensor, shape, where)
    n_down = 0 if down is None else down.values.ndim
    up_index = np.ravel_multi_index(tuple(coords[n_down:]), up.values.shape)
    down_index = (
        np.zeros(0, dtype=np.int64)
        if down is None
        else np.ravel_multi_index(tuple(coords[:n_down]), down.values.shape)
    )
    return EdgeBlock(up.module.name, down_name, up_index, down_index, weights)


def read_edges(edges: Any, sites: dict[str, SiteEffects]) -> list[EdgeBlock]:
    """Every ``edges[up][down]`` as an :class:`EdgeBlock`; ``[]`` for a nodes-only file."""
    if edges is None:
        return []
    if not isinstance(edges, dict):
        raise InvalidGraphError(f"edges: expected a dict of dicts, found {_type(edges)}")
    blocks = []
    for up_name, targets in edges.items():
        if up_name == METRIC:
            raise InvalidGraphError("edges['y']: the metric y has no outgoing edges")
        up = _site(sites, up_name, "edges")
        if not isinstance(targets, dict):
            raise InvalidGraphError(f"edges[{up_name!r}]: expected a dict, found {_type(targets)}")
        for down_name, tensor in targets.items():
            where = f"edges[{up_name!r}]"
            down = None if down_name == METRIC else _site(sites, down_name, where)
            blocks.append(edge_block(up, down, tensor))
    return blocks


def _site(sites: dict[str, SiteEffects], name: Any, where: str) -> SiteEffects:
    module = submodule(name, where)
    if module.name not in sites:
        raise InvalidGraphError(f"{where}: {module.name!r} has no node effects in nodes")
    return sites[module.name]


# ------------------------------------------------------------------ the graph
def kept_nodes(sites: dict[str, SiteEffects], blocks: list[EdgeBlock]) -> dict[str, np.ndarray]:
    """Per submodule, the sorted flat indices of the nodes kept: non-zero effect or edge."""
    kept = {name: [np.flatnonzero(site.values)] for name, site in sites.items()}
    for block in blocks:
        kept[block.up].append(block.up_index)
        if block.down != METRIC:
            kept[block.down].append(block.down_index)
    return {name: np.unique(np.concatenate(parts)) for name, parts in kept.items()}


def node_rows(site: SiteEffects, kept: np.ndarray) -> pd.DataFrame:
    """The node table rows of one submodule's kept nodes (flat indices into its values)."""
    module, n_nodes = site.module, site.n_nodes
    index = kept % n_nodes
    is_error = index == n_nodes - 1
    feature = pd.array(index, dtype="Int64")
    feature[is_error] = pd.NA
    by_position = site.values.ndim == 2
    pos = pd.array(kept // n_nodes if by_position else [None] * len(kept), dtype="Int64")
    names = [  # feature-circuits' own node names (circuit_plotting): "3, resid_0/ε"
        (f"{p}, " if by_position else "") + f"{module.name}/{'ε' if error else i}"
        for p, i, error in zip((kept // n_nodes).tolist(), index.tolist(), is_error.tolist())
    ]
    kinds = np.where(is_error, f"{module.site}_error", f"{module.site}_feature")
    return pd.DataFrame(
        {
            "kind": kinds.astype(object),
            "layer": pd.array([module.layer] * len(kept), dtype="Int64"),
            "pos": pos,
            "feature": feature,
            "node_effect": site.values.reshape(-1)[kept],
            "source_id": pd.Series(names, dtype=object),
        }
    )


def build_graph(
    sites: dict[str, SiteEffects],
    blocks: list[EdgeBlock],
    y_effect: float | None,
    metadata: GraphMetadata,
) -> CircuitGraph:
    """Node rows by submodule in forward order (then position, feature, error last), the
    metric ``y`` last; one edge per non-zero entry of every block."""
    kept = kept_nodes(sites, blocks)
    ordered = sorted(sites, key=lambda name: sites[name].module.order)
    frames, first_row, row = [], {}, 0
    for name in ordered:
        frames.append(node_rows(sites[name], kept[name]))
        first_row[name], row = row, row + len(kept[name])
    metric_row = row
    effect = np.nan if y_effect is None else y_effect
    y_node = {"kind": NodeKind.LOGITS.value, "node_effect": effect, "source_id": METRIC}
    frames.append(pd.DataFrame([y_node]))
    nodes = pd.concat(frames, ignore_index=True)

    def rows_of(name: str, index: np.ndarray) -> np.ndarray:
        return first_row[name] + np.searchsorted(kept[name], index)

    sources, targets, weights = [], [], []
    for block in blocks:
        sources.append(rows_of(block.up, block.up_index))
        down = block.down
        targets.append(
            np.full(len(block.weights), metric_row)
            if down == METRIC
            else rows_of(down, block.down_index)
        )
        weights.append(block.weights)
    edges = pd.DataFrame(
        {
            "source": np.concatenate(sources or [np.zeros(0, np.int64)]),
            "target": np.concatenate(targets or [np.zeros(0, np.int64)]),
            "weight": np.concatenate(weights or [np.zeros(0)]),
        }
    )
    return CircuitGraph(nodes, edges, metadata)


def thresholds_in_name(path: Path) -> dict[str, float]:
    """The node/edge thresholds feature-circuits writes into its file names (``_node0.1``)."""
    found = {}
    for kind, text in _THRESHOLD.findall(path.name.removesuffix(".pt")):
        value = float(text)
        if math.isfinite(value):
            found[kind] = value
    return found


def first_example(examples: list[Any]) -> dict[str, Any]:
    """The first example's plain fields (its prompt and answers), cut to a sane length."""
    if not examples or not isinstance(examples[0], dict):
        return {}
    return {
        str(key)[:100]: value[:_MAX_EXAMPLE_TEXT] if isinstance(value, str) else value
        for key, value in list(examples[0].items())[:20]
        if _storable(value)
    }


def _storable(value: Any) -> bool:
    """A string, or a number the metadata's JSON and the database both hold."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str) or (isinstance(value, int) and -(2**63) <= value < 2**63)


def parse_feature_circuits(document: Any, path: Path, graph_id: str | None = None) -> CircuitGraph:
    if not isinstance(document, dict):
        raise InvalidGraphError(
            f"a {_type(document)}; a feature-circuits circuit is a dict of examples, nodes "
            "and edges"
        )
    missing = sorted(REQUIRED_KEYS - document.keys())
    if missing:
        raise InvalidGraphError(
            f"missing key(s) {', '.join(missing)}; a feature-circuits circuit is a dict of "
            "examples, nodes and edges"
        )
    examples = document["examples"]
    if not isinstance(examples, (list, tuple)):
        raise InvalidGraphError(f"examples: expected a list of examples, found {_type(examples)}")
    sites, aggregation, y_effect = read_nodes(document["nodes"])
    blocks = read_edges(document["edges"], sites)
    any_site = next(iter(sites.values()))
    facts: dict[str, Any] = {
        "aggregation": aggregation,
        "n_examples": len(examples),
        "n_positions": any_site.values.shape[0] if aggregation == "none" else None,
        "dictionary_sizes": {name: site.n_nodes - 1 for name, site in sites.items()},
        "edges_saved": document["edges"] is not None,
        "thresholds_in_file_name": thresholds_in_name(path),
        "first_example": first_example(list(examples)),
    }
    metadata = GraphMetadata(
        graph_id=graph_id or file_stem(path),
        method="sparse-feature-circuit",
        source_tool="feature-circuits",
        source_format=FORMAT_NAME,
        extra={"source_file": path.name, "feature_circuits": facts},
    )
    return build_graph(sites, blocks, y_effect, metadata)


def _type(value: Any) -> str:
    return type(value).__name__


def _sniff(document: Any) -> bool:
    return isinstance(document, dict) and document.keys() >= REQUIRED_KEYS


register(
    Importer(
        FORMAT_NAME,
        "feature-circuits saved circuit (Marks et al. 2024, sparse feature circuits)",
        _sniff,
        parse_feature_circuits,
    )
)
