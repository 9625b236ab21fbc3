"""feature-circuits' saved circuits: the graph the importer makes, its refusals, and that the
files are read only by the restricted unpickler, whose new globals (sparse COO tensors, the
``SparseAct`` stand-in) still cannot run code.

The fixtures are written by ``tests/data/feature_circuits/make_fixture.py`` in the peer's exact
pickled format; every expected value below is read off that script by hand.
"""

from __future__ import annotations

import importlib.util
import os
import pickletools
import shlex
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from circuit_atlas.errors import ImportFormatError, InvalidGraphError
from circuit_atlas.graph import CircuitGraph, NodeKey
from circuit_atlas.ingest import load_graph
from circuit_atlas.ingest.feature_circuits import (
    FORMAT_NAME,
    SparseActRecord,
    parse_feature_circuits,
    read_feature_circuits,
    thresholds_in_name,
)
from circuit_atlas.ingest.importers import PT_STAND_INS
from circuit_atlas.ingest.safe_torch import load_torch_file

DATA = Path(__file__).resolve().parents[1] / "data" / "feature_circuits"


def _fixture_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fc_make_fixture", DATA / "make_fixture.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixture = _fixture_script()
SUM_FILE: Path = fixture.SUM_FILE
NONE_FILE: Path = fixture.NONE_FILE
ERR = fixture.ERROR  # the error node's index in an edge tensor


def imported(path: Path) -> CircuitGraph:
    return parse_feature_circuits(read_feature_circuits(path), path)


def node(
    graph: CircuitGraph, kind: str, layer: int | None, pos: int | None, feature: int | None = None
) -> int:
    return graph.index_of(NodeKey(kind, layer, pos, feature))


def weight(graph: CircuitGraph, source: int, target: int) -> float:
    edges = graph.edges
    match = edges[(edges["source"] == source) & (edges["target"] == target)]
    assert len(match) == 1, (source, target)
    return float(match["weight"].iloc[0])


# ------------------------------------------------------------------ the graph
def test_summed_circuit_nodes_edges_and_values():
    graph = imported(SUM_FILE)
    assert (graph.n_nodes, graph.n_edges) == (14, 11)
    assert graph.summary() | {"graph_id": None} == {
        "graph_id": None,
        "nodes": 14,
        "edges": 11,
        "embed_feature": 2,
        "embed_error": 1,
        "attn_feature": 2,
        "attn_error": 1,
        "mlp_feature": 2,
        "resid_feature": 3,
        "resid_error": 2,
        "logits": 1,
    }
    assert graph.nodes["pos"].isna().all() and graph.nodes["head"].isna().all()
    embed0 = node(graph, "embed_feature", None, None, 0)
    resid0_1 = node(graph, "resid_feature", 0, None, 1)
    assert graph.nodes.at[embed0, "node_effect"] == 0.5
    assert graph.nodes.at[embed0, "source_id"] == "embed/0"
    assert weight(graph, embed0, resid0_1) == 0.75  # edges["embed"]["resid_0"][1, 0]
    assert (
        weight(graph, node(graph, "embed_error", None, None), node(graph, "resid_error", 0, None))
        == -0.5
    )
    # the older, fully sparse layout: edges["attn_0"]["resid_0"][1, ERR]
    assert weight(graph, node(graph, "attn_error", 0, None), resid0_1) == -0.125
    resid1_0 = node(graph, "resid_feature", 1, None, 0)
    assert weight(graph, resid0_1, resid1_0) == 2.0  # across layers
    assert graph.adjacency()[resid1_0, resid0_1] == 2.0  # A[target, source]


def test_nodes_kept_are_those_with_an_effect_or_an_edge():
    graph = imported(SUM_FILE)
    keys = set(graph.keys())
    # zero effect, but an edge's source (mlp_0 #2) or target (attn_1 #2): kept
    assert NodeKey("mlp_feature", 0, None, 2) in keys
    assert NodeKey("attn_feature", 1, None, 2) in keys
    assert graph.nodes.at[graph.index_of(NodeKey("mlp_feature", 0, None, 2)), "node_effect"] == 0
    # zero effect and no edge: not kept; a stored all-zero row (resid_1 #3 from resid_0) adds
    # no edge, yet resid_1 #3 stays for its own effect
    assert NodeKey("mlp_feature", 0, None, 0) not in keys
    assert NodeKey("mlp_error", 0, None) not in keys
    resid1_3 = graph.index_of(NodeKey("resid_feature", 1, None, 3))
    sources = graph.edges.loc[graph.edges["target"] == resid1_3, "source"].tolist()
    assert sources == [graph.index_of(NodeKey("mlp_feature", 1, None, 3))]


def test_the_metric_node_receives_the_last_residual():
    graph = imported(SUM_FILE)
    y = graph.index_of(NodeKey("logits"))
    assert graph.nodes.at[y, "source_id"] == "y" and np.isnan(graph.nodes.at[y, "node_effect"])
    into = graph.edges[graph.edges["target"] == y]
    got = {graph.keys()[s]: w for s, w in zip(into["source"], into["weight"])}
    assert got == {
        NodeKey("resid_feature", 1, None, 0): 1.25,
        NodeKey("resid_feature", 1, None, 3): -0.75,
        NodeKey("resid_error", 1, None): 0.5,
    }
    assert not (graph.edges["source"] == y).any()


SITE_RANK = {"embed": 0, "attn": 1, "mlp": 2, "resid": 3}


def rank(key: NodeKey) -> float:
    if key.kind == "logits":
        return float("inf")
    site = key.kind.split("_")[0]
    return 0 if key.layer is None else 3 * key.layer + SITE_RANK[site]


@pytest.mark.parametrize("path", [SUM_FILE, NONE_FILE], ids=["sum", "none"])
def test_every_edge_runs_from_upstream_to_downstream(path: Path):
    graph = imported(path)
    keys = graph.keys()
    for source, target in zip(graph.edges["source"], graph.edges["target"]):
        assert rank(keys[source]) < rank(keys[target]), (keys[source], keys[target])
    assert (graph.edges["weight"] != 0).all()


def test_per_position_circuit():
    graph = imported(NONE_FILE)
    assert (graph.n_nodes, graph.n_edges) == (9, 6)
    assert not graph.nodes["kind"].str.startswith("embed").any()  # Gemma-like: no embed SAE
    resid0_3_at0 = node(graph, "resid_feature", 0, 0, 3)
    resid0_3_at2 = node(graph, "resid_feature", 0, 2, 3)
    resid1_1_at2 = node(graph, "resid_feature", 1, 2, 1)
    assert graph.nodes.at[resid0_3_at0, "node_effect"] == pytest.approx(0.6)
    assert graph.nodes.at[resid1_1_at2, "source_id"] == "2, resid_1/1"
    assert weight(graph, resid0_3_at0, resid1_1_at2) == 0.5  # [2, 1, 0, 3]
    assert weight(graph, resid0_3_at2, resid1_1_at2) == -0.25  # [2, 1, 2, 3]
    attn_to_mlp = weight(
        graph, node(graph, "attn_feature", 0, 0, 2), node(graph, "mlp_feature", 0, 1, 0)
    )
    assert attn_to_mlp == 0.75
    # errors, from the older fully sparse layout: edges["mlp_1"]["resid_1"][2, ERR, 2, ERR]
    assert weight(graph, node(graph, "mlp_error", 1, 2), node(graph, "resid_error", 1, 2)) == 0.125
    assert NodeKey("mlp_error", 0, 1) in set(graph.keys())  # its effect alone keeps it
    y = graph.index_of(NodeKey("logits"))
    assert weight(graph, node(graph, "resid_error", 1, 2), y) == -0.5


def test_metadata_records_what_the_file_knew():
    graph = imported(SUM_FILE)
    meta = graph.metadata
    assert (meta.graph_id, meta.source_format, meta.source_tool) == (
        "tiny_simple_n3_aggsum_node0.1",
        FORMAT_NAME,
        "feature-circuits",
    )
    facts = meta.extra["feature_circuits"]
    assert facts["aggregation"] == "sum" and facts["n_examples"] == 3
    assert facts["n_positions"] is None and facts["edges_saved"] is True
    assert facts["dictionary_sizes"] == dict.fromkeys(
        ["embed", "attn_0", "mlp_0", "resid_0", "attn_1", "mlp_1", "resid_1"], 4
    )
    assert facts["thresholds_in_file_name"] == {"node": 0.1}
    assert facts["first_example"]["clean_prefix"] == "The author near the tree"
    assert meta.node_threshold is None  # the nodes are not pruned at it
    none = imported(NONE_FILE).metadata.extra["feature_circuits"]
    assert (none["aggregation"], none["n_positions"], none["n_examples"]) == ("none", 3, 2)


def test_thresholds_are_read_from_feature_circuits_file_names():
    name = Path("cluster_dict10_node0.1_edge0.01_n100_aggsum.pt")
    assert thresholds_in_name(name) == {"node": 0.1, "edge": 0.01}
    assert thresholds_in_name(Path("gemma-2-2b_rc_n100_aggnone_nodeall.pt")) == {}
    assert thresholds_in_name(Path("mine.pt")) == {}


def test_load_graph_detects_the_format():
    graph = load_graph(SUM_FILE)
    assert graph.metadata.source_format == FORMAT_NAME and graph.n_edges == 11
    assert load_graph(NONE_FILE, fmt=FORMAT_NAME, graph_id="x").graph_id == "x"


# ------------------------------------------------------------------ variants the peer writes
def test_a_nodes_only_file_has_nodes_and_no_edges():
    document = read_feature_circuits(SUM_FILE)
    document["edges"] = None  # --nodes_only
    graph = parse_feature_circuits(document, SUM_FILE)
    assert graph.n_edges == 0 and graph.metadata.extra["feature_circuits"]["edges_saved"] is False
    assert graph.n_nodes == 11  # the 10 non-zero effects, and y


@pytest.mark.parametrize(
    ("saved", "expected"), [(torch.tensor(0.5), 0.5), (torch.tensor([1.0, 2.0]), 1.5)]
)
def test_a_saved_metric_effect_is_the_logits_node_effect(saved: torch.Tensor, expected: float):
    document = read_feature_circuits(SUM_FILE)
    document["nodes"]["y"] = saved  # get_circuit's own output keeps y (per example if summed)
    graph = parse_feature_circuits(document, SUM_FILE)
    assert graph.nodes.at[graph.index_of(NodeKey("logits")), "node_effect"] == expected


def test_dense_edges_and_duplicate_coo_entries_read_as_the_tensor_they_are():
    document = read_feature_circuits(SUM_FILE)
    edges = document["edges"]
    edges["embed"]["resid_0"] = edges["embed"]["resid_0"].to_dense()
    twice = torch.sparse_coo_tensor(
        torch.tensor([[1, 1], [2, 2]]), torch.tensor([1.0, 0.5]), (5, 5), check_invariants=True
    )
    edges["mlp_0"]["resid_0"] = twice  # uncoalesced: COO sums the two
    graph = parse_feature_circuits(document, SUM_FILE)
    resid0_1 = node(graph, "resid_feature", 0, None, 1)
    assert weight(graph, node(graph, "embed_feature", None, None, 0), resid0_1) == 0.75
    assert weight(graph, node(graph, "mlp_feature", 0, None, 2), resid0_1) == 1.5


def test_bfloat16_circuits_read(tmp_path: Path):
    """Gemma circuits are computed and saved in bfloat16."""
    document = fixture.none_circuit()
    for effect in document["nodes"].values():
        effect.act, effect.resc = effect.act.bfloat16(), effect.resc.bfloat16()
    for targets in document["edges"].values():
        for down, tensor in targets.items():
            targets[down] = tensor.bfloat16()
    path = tmp_path / "gemma.pt"
    fixture.save(document, path)
    graph = imported(path)
    assert graph.n_edges == 6
    assert graph.nodes.at[node(graph, "mlp_error", 1, 2), "node_effect"] == pytest.approx(
        0.7, abs=1e-2
    )


# ------------------------------------------------------------------ malformed files
def sparse(indices: list[list[int]], values: list[float], size: tuple[int, ...]) -> torch.Tensor:
    """A COO tensor built without torch's checks (as a caller, not our loader, could)."""
    return torch.sparse_coo_tensor(
        torch.tensor(indices), torch.tensor(values), size, check_invariants=False
    )


def set_in(*keys: Any, value: Any) -> Callable[[dict], None]:
    def mutate(document: dict) -> None:
        target = document
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return mutate


def set_field(name: str, field: str, value: Any) -> Callable[[dict], None]:
    def mutate(document: dict) -> None:
        setattr(document["nodes"][name], field, value)

    return mutate


def delete(key: str) -> Callable[[dict], None]:
    return lambda document: document.pop(key)


def move(up: str, down: str, new_up: str, new_down: str) -> Callable[[dict], None]:
    def mutate(document: dict) -> None:
        tensor = document["edges"][up].pop(down)
        document["edges"].setdefault(new_up, {})[new_down] = tensor

    return mutate


def csr_eye() -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch: "Sparse CSR tensor support is in beta state"
        return torch.eye(5).to_sparse_csr()


NAN_ACT = torch.tensor([0.0, float("nan"), 0.0, 0.0])
INF_EDGE = torch.tensor([[float("inf")] * 5] * 5).to_sparse(1)
MALFORMED: dict[str, tuple[Callable[[dict], None], str]] = {
    "no edges key": (delete("edges"), r"missing key\(s\) edges; a feature-circuits circuit"),
    "no examples key": (delete("examples"), r"missing key\(s\) examples"),
    "examples not a list": (set_in("examples", value=3), "examples: expected a list"),
    "nodes not a dict": (set_in("nodes", value=[]), "nodes: expected a dict of SparseActs"),
    "no submodule": (set_in("nodes", value={}), "nodes: no submodule's effects"),
    "node not a SparseAct": (
        set_in("nodes", "mlp_0", value=torch.zeros(4)),
        r"nodes\['mlp_0'\]: expected a SparseAct of node effects",
    ),
    "unknown submodule": (
        set_in("nodes", "block_0", value=SparseActRecord(torch.zeros(4), resc=torch.zeros(1))),
        "nodes: unknown submodule 'block_0'",
    ),
    "no error term": (set_field("resid_0", "resc", None), "no contracted error term"),
    "error term of another shape": (
        set_field("resid_0", "resc", torch.zeros(2)),
        r"nodes\['resid_0'\].resc: shape \(2,\) does not match act \(4,\)",
    ),
    "integer effects": (
        set_field("resid_0", "act", torch.zeros(4, dtype=torch.int64)),
        r"nodes\['resid_0'\].act: expected a dense float tensor",
    ),
    "NaN effect": (set_field("resid_0", "act", NAN_ACT), r"resid_0'\].act: NaN or infinite"),
    "mixed aggregation": (
        set_in("nodes", "mlp_1", value=SparseActRecord(torch.zeros(3, 4), resc=torch.zeros(3, 1))),
        "effects of different layouts",
    ),
    "bad metric": (set_in("nodes", "y", value="y"), r"nodes\['y'\]: expected the metric"),
    "edges not a dict": (set_in("edges", value=[1]), "edges: expected a dict of dicts"),
    "edge row not a dict": (
        set_in("edges", "mlp_0", value=torch.zeros(5)),
        r"edges\['mlp_0'\]: expected a dict, found Tensor",
    ),
    "edge not a tensor": (
        set_in("edges", "mlp_0", "resid_0", value=[[1.0]]),
        r"edges\['mlp_0'\]\['resid_0'\]: expected a tensor of shape \(5, 5\).*found list",
    ),
    "edge of another shape": (
        set_in("edges", "mlp_0", "resid_0", value=torch.zeros(5, 6).to_sparse()),
        r"edges\['mlp_0'\]\['resid_0'\]: expected a tensor of shape \(5, 5\).*found \(5, 6\)",
    ),
    "edge into y of another shape": (
        set_in("edges", "resid_1", "y", value=torch.zeros(5, 5).to_sparse()),
        r"edges\['resid_1'\]\['y'\]: expected a tensor of shape \(5,\)",
    ),
    "infinite edge": (
        set_in("edges", "mlp_0", "resid_0", value=INF_EDGE),
        r"edges\['mlp_0'\]\['resid_0'\]: NaN or infinite",
    ),
    "negative index": (
        set_in("edges", "mlp_0", "resid_0", value=sparse([[-1], [0]], [1.0], (5, 5))),
        "negative or out-of-range indices for shape",
    ),
    "index past the error node": (
        set_in("edges", "mlp_0", "resid_0", value=sparse([[0], [5]], [1.0], (5, 5))),
        "negative or out-of-range indices",
    ),
    "CSR edge": (
        lambda document: set_in("edges", "mlp_0", "resid_0", value=csr_eye())(document),
        "torch.sparse_csr tensor; expected sparse COO",
    ),
    "edge running backwards": (
        move("resid_0", "resid_1", "resid_1", "resid_0"),
        r"edges\['resid_1'\]\['resid_0'\]: runs from resid_1 back to resid_0",
    ),
    "edge to a submodule without nodes": (
        move("resid_0", "resid_1", "resid_0", "resid_7"),
        r"edges\['resid_0'\]: 'resid_7' has no node effects",
    ),
    "edge out of the metric": (
        move("resid_1", "y", "y", "resid_1"),
        r"edges\['y'\]: the metric y has no outgoing edges",
    ),
    "edge to an unknown name": (
        move("resid_0", "resid_1", "resid_0", "logits"),
        r"edges\['resid_0'\]: unknown submodule 'logits'",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_a_malformed_circuit_gets_one_clear_error(case: str):
    mutate, message = MALFORMED[case]
    document = read_feature_circuits(SUM_FILE)
    mutate(document)
    with pytest.raises(InvalidGraphError, match=message) as refused:
        parse_feature_circuits(document, SUM_FILE)
    assert "\n" not in str(refused.value)


def test_not_a_dict_is_refused():
    with pytest.raises(InvalidGraphError, match="a list; a feature-circuits circuit is a dict"):
        parse_feature_circuits([], SUM_FILE)


def test_a_malformed_file_is_named_in_the_error(tmp_path: Path):
    document = fixture.sum_circuit()
    document["nodes"]["resid_0"].resc = None
    path = tmp_path / "broken.pt"
    fixture.save(document, path)
    with pytest.raises(ImportFormatError, match="no contracted error term") as refused:
        load_graph(path, fmt=FORMAT_NAME)
    assert str(refused.value).startswith(f"{path}: nodes['resid_0']")


# ------------------------------------------------------------------ the restricted unpickler
def globals_named(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        [pkl] = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        data = archive.read(pkl)
    return {str(arg) for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}


def test_the_globals_a_saved_circuit_names_are_the_allowed_ones():
    assert globals_named(SUM_FILE) == {
        "activation_utils SparseAct",
        "torch._utils _rebuild_sparse_tensor",
        "torch.serialization _get_layout",
        "torch._utils _rebuild_tensor_v2",
        "torch FloatStorage",
        "torch LongStorage",
        "torch Size",
        "collections OrderedDict",
    }
    assert PT_STAND_INS[("activation_utils", "SparseAct")] is SparseActRecord


def coo(indices: list[list[int]], values: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    return torch.sparse_coo_tensor(
        torch.tensor(indices, dtype=torch.int64).reshape(len(indices), -1),
        values,
        size,
        check_invariants=True,
    )


def test_sparse_tensors_load_as_torch_loads_them(tmp_path: Path):
    document = {
        "hybrid": coo([[0, 3]], torch.randn(2, 4), (5, 4)).coalesce(),
        "uncoalesced": coo([[1, 1]], torch.ones(2), (3,)),
        "empty": coo([[], []], torch.zeros(0), (2, 3)),
        "half": torch.eye(3).half().to_sparse(),
    }
    path = tmp_path / "sparse.pt"
    torch.save(document, path)
    ours, theirs = load_torch_file(path), torch.load(path, weights_only=True)
    for key, expected in theirs.items():
        got = ours[key]
        assert got.layout == torch.sparse_coo and got.dtype == expected.dtype, key
        assert got.is_coalesced() == expected.is_coalesced(), key
        assert torch.equal(got.to_dense(), expected.to_dense()), key


class Payload:
    """Unpickling this runs ``touch MARKER`` in a shell."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


class Call:
    """Pickles as a call of ``function(*args)``, optionally with ``state`` (BUILD)."""

    def __init__(self, function: Any, *args: Any, state: Any = None) -> None:
        self.function, self.args, self.state = function, args, state

    def __reduce__(self) -> tuple:
        if self.state is None:
            return self.function, self.args
        return self.function, self.args, self.state


def layout(name: Any = "torch.sparse_coo") -> Call:
    return Call(torch.serialization._get_layout, name)


def rebuild_sparse(*parts: Any, layout_: Any = None) -> Call:
    return Call(
        torch._utils._rebuild_sparse_tensor, layout() if layout_ is None else layout_, parts
    )


SPARSE_ACT = fixture.SparseAct
INDEX = torch.tensor([[0, 1]])
ONES = torch.ones(2)


def hostile(marker: Path) -> dict[str, Any]:
    """Payloads that reach the new globals: each must be refused, none may run."""
    payload = Payload(marker)
    return {
        "SparseAct called on a payload": Call(SPARSE_ACT, payload),
        "SparseAct with a payload in its state": Call(SPARSE_ACT, state={"act": payload}),
        "layout named by a payload": rebuild_sparse(INDEX, ONES, (3,), layout_=payload),
        "sparse values from a payload": rebuild_sparse(INDEX, payload, (3,)),
        "_get_layout of a payload": layout(payload),
    }


@pytest.mark.parametrize("case", list(hostile(Path("m"))))
def test_payloads_through_the_new_globals_do_not_run(case: str, tmp_path: Path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pt"
    fixture.save({"examples": [], "nodes": {}, "edges": hostile(marker)[case]}, path)
    with pytest.raises(ImportFormatError, match=r"posix\.system object.*refusing to unpickle"):
        read_feature_circuits(path)
    assert not marker.exists()
    with pytest.raises(ImportFormatError, match="refusing to unpickle"):
        load_graph(path)
    assert not marker.exists()


def test_the_payload_is_live_without_the_restricted_unpickler(tmp_path: Path):
    """The control: torch.load without weights_only runs it (through SparseAct's global)."""
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pt"
    fixture.save({"x": hostile(marker)["SparseAct called on a payload"]}, path)
    with fixture.pickled_as_feature_circuits():
        torch.load(path, weights_only=False)
    assert marker.exists()


MISUSED: dict[str, tuple[Any, str]] = {
    "SparseAct called on text": (Call(SPARSE_ACT, "touch x"), "SparseAct whose act is a str"),
    "SparseAct setting other attributes": (
        Call(SPARSE_ACT, state={"act": None, "__class__": "x"}),
        "SparseAct whose state is not its act/res/resc fields",
    ),
    "SparseAct with slot state": (
        Call(SPARSE_ACT, state=({}, {"__class__": "x"})),
        "SparseAct whose state is not",
    ),
    "another layout": (layout("torch.sparse_csr"), "layout torch.sparse_csr; only COO"),
    "a name as layout": (layout("os.system"), "layout os.system; only COO"),
    "layout as a plain string": (
        rebuild_sparse(INDEX, ONES, (3,), layout_="torch.sparse_coo"),
        "without the COO layout marker",
    ),
    "index outside the size": (
        rebuild_sparse(torch.tensor([[0, 7]]), ONES, (3,)),
        r"size \(3,\) has index 7 in dimension 0, outside it",
    ),
    "negative index": (rebuild_sparse(torch.tensor([[-4, 0]]), ONES, (3,)), "index -4"),
    "values of another count": (
        rebuild_sparse(INDEX, torch.ones(3), (3,)),
        "with 2 indices but values of shape",
    ),
    "size of another rank": (rebuild_sparse(INDEX, ONES, (3, 3)), "size does not match"),
    "float indices": (rebuild_sparse(INDEX.float(), ONES, (3,)), "malformed indices"),
    "indices not a tensor": (rebuild_sparse([[0, 1]], ONES, (3,)), "not dense tensors"),
    "sparse values": (rebuild_sparse(INDEX, ONES.to_sparse(), (3,)), "not dense tensors"),
    "negative size": (rebuild_sparse(INDEX, ONES, (-3,)), "size does not match"),
    "huge size": (
        rebuild_sparse(INDEX, ONES, (2**40, 2**40)),
        "size does not match",
    ),
    "too many elements": (
        rebuild_sparse(torch.tensor([[0, 1], [0, 1]]), ONES, (2**40, 2**40)),
        "more elements than int64 counts",
    ),
    "lying coalesced flag": (
        rebuild_sparse(torch.tensor([[1, 0]]), ONES, (3,), True),
        "not a readable torch file",
    ),
    "flag not a bool": (rebuild_sparse(INDEX, ONES, (3,), "yes"), "malformed is_coalesced"),
}


@pytest.mark.parametrize("case", MISUSED)
def test_misuse_of_the_new_globals_is_refused(case: str, tmp_path: Path):
    value, message = MISUSED[case]
    path = tmp_path / "odd.pt"
    fixture.save({"examples": [], "nodes": {}, "edges": value}, path)
    with pytest.raises(ImportFormatError, match=message) as refused:
        read_feature_circuits(path)
    assert "\n" not in str(refused.value)


def test_a_hostile_copy_of_a_circuit_is_refused_before_unpickling(tmp_path: Path):
    """The legacy format (and plain pickles) are refused from their first bytes."""
    marker = tmp_path / "MARKER"
    document = fixture.sum_circuit() | {"x": Payload(marker)}
    path = tmp_path / "legacy.pt"
    with fixture.pickled_as_feature_circuits():
        torch.save(document, path, _use_new_zipfile_serialization=False)
    for read in (read_feature_circuits, load_graph):
        with pytest.raises(ImportFormatError, match=r"torch's legacy \(pre-1\.6\) format"):
            read(path)
    assert not marker.exists()
    zipped = tmp_path / "zipped.pt"
    fixture.save(document, zipped)
    with pytest.raises(ImportFormatError, match=r"posix\.system object"):
        read_feature_circuits(zipped)
    assert not marker.exists()
