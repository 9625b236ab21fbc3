"""Write small circuits exactly as feature-circuits' ``circuit.py`` saves them, one per
aggregation, so the importer is tested on the peer tool's format without installing it (it
needs nnsight, a model and SAEs).

What "exactly" means (read from saprmarks/feature-circuits at commit 1d87366c, see
``ingest/feature_circuits.py``): ``torch.save({"examples", "nodes", "edges"})`` with

* node effects as ``activation_utils.SparseAct`` objects: a plain class of that module and
  qualname, pickled as its ``__dict__`` (``act``, ``res`` = None, ``resc``). The stand-in below
  is put in ``sys.modules["activation_utils"]`` only while saving, so the pickle names the same
  global as a real file does;
* edges as sparse COO tensors ``edges[upstream][downstream]`` of shape ``[d_down + 1, d_up + 1]``
  ("sum") or ``[n_pos, d_down + 1, n_pos, d_up + 1]`` ("none"), downstream first, hybrid as the
  peer's reductions leave them (sparse over the downstream dimensions, dense over the upstream
  ones; ``check_layout`` below derives that from a jvp-shaped tensor), one edge per file in the
  older fully sparse layout, empty edges where no downstream node passed the threshold, and no
  ``y`` in ``nodes`` (the script drops it before saving).

``tiny_simple_n3_aggsum_node0.1.pt`` is Pythia-like (an embedding SAE; attention and MLP in
parallel, so no attn → mlp edges), ``tiny_simple_n2_aggnone_node0.1.pt`` Gemma-like (no
embedding SAE; attn → mlp edges), both 2 layers of 4-feature dictionaries (index 4 = the error),
3 positions. Every value is chosen by hand so the tests can check them. Regenerate with:

    python tests/data/feature_circuits/make_fixture.py
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Generator
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
N_LAYERS, D_DICT, N_POS = 2, 4, 3
ERROR = D_DICT  # the error node's index, after the features
SUM_FILE = HERE / "tiny_simple_n3_aggsum_node0.1.pt"
NONE_FILE = HERE / "tiny_simple_n2_aggnone_node0.1.pt"
# An entry of an edge: downstream index…, upstream index… → weight.
Entries = dict[tuple[int, ...], float]


class SparseAct:
    """Stand-in for feature-circuits' ``activation_utils.SparseAct``: same fields and the same
    pickled name (``__module__`` is set below); none of its arithmetic."""

    def __init__(
        self,
        act: torch.Tensor,
        res: torch.Tensor | None = None,
        resc: torch.Tensor | None = None,
    ) -> None:
        self.act = act
        self.res = res
        self.resc = resc


SparseAct.__module__ = "activation_utils"


@contextlib.contextmanager
def pickled_as_feature_circuits() -> Generator[None]:
    """Make ``SparseAct`` picklable as ``activation_utils.SparseAct`` while saving."""
    module = types.ModuleType("activation_utils")
    setattr(module, "SparseAct", SparseAct)  # noqa: B010  (a module made at run time)
    saved = sys.modules.get("activation_utils")
    sys.modules["activation_utils"] = module
    try:
        yield
    finally:
        if saved is None:
            del sys.modules["activation_utils"]
        else:
            sys.modules["activation_utils"] = saved


def save(document: dict[str, Any], path: Path) -> None:
    with pickled_as_feature_circuits():
        torch.save(document, path)


def effects(act: list[Any], resc: list[Any]) -> SparseAct:
    """Node effects: ``act`` per feature, ``resc`` per error (keepdim, as ``@`` leaves it)."""
    return SparseAct(act=torch.tensor(act), resc=torch.tensor(resc))


def hybrid(shape: tuple[int, ...], entries: Entries, sparse_dim: int) -> torch.Tensor:
    """A COO tensor of ``shape`` holding ``entries``, sparse over its first ``sparse_dim``
    dimensions and dense over the rest (``sparse_dim == len(shape)``: fully sparse). Every
    entry's sparse index is stored, even where its weight is 0 (as the peer's jvp stores a
    downstream node all of whose upstream weights are 0)."""
    dense = torch.zeros(shape)
    for index, weight in entries.items():
        dense[index] = weight
    stored = sorted({index[:sparse_dim] for index in entries})
    indices = torch.tensor(stored, dtype=torch.int64).reshape(len(stored), sparse_dim).T
    values = torch.stack([dense[i] for i in stored]) if stored else dense.new_zeros((0,))
    values = values.reshape(len(stored), *shape[sparse_dim:])
    return torch.sparse_coo_tensor(indices, values, shape, check_invariants=True).coalesce()


def check_layout() -> None:
    """The peer's reductions of its jvp tensor ``[b, s, f+1 (down), b, s, f+1 (up)]``, sparse
    over the downstream half, leave 1 sparse + 1 dense dimension ("sum") or 2 + 2 ("none")."""
    jvp = hybrid((2, N_POS, ERROR + 1) * 2, {(0, 1, 2, 1, 0, 3): 1.0}, sparse_dim=3)
    summed = jvp.sum(dim=(1, 4)).sum(dim=(0, 2)) / 2
    by_position = jvp.sum(dim=(0, 3)) / 2
    assert (summed.sparse_dim(), summed.dense_dim()) == (1, 1)
    assert (by_position.sparse_dim(), by_position.dense_dim()) == (2, 2)


def examples(n: int) -> list[dict[str, str]]:
    return [
        {
            "clean_prefix": f"The author{'s' if i % 2 else ''} near the tree",
            "patch_prefix": f"The author{'' if i % 2 else 's'} near the tree",
            "clean_answer": " are" if i % 2 else " is",
            "patch_answer": " is" if i % 2 else " are",
        }
        for i in range(n)
    ]


def sum_circuit() -> dict[str, Any]:
    """Pythia-like, summed over positions: effects ``[d]``/``[1]``, edges ``[d+1, d+1]``."""
    nodes = {
        "embed": effects([0.5, 0.0, 0.0, -0.25], [0.125]),
        "attn_0": effects([0.0, 0.0, 0.3, 0.0], [0.0]),
        "mlp_0": effects([0.0, 0.0, 0.0, 0.0], [0.0]),
        "resid_0": effects([0.0, 0.9, 0.0, 0.0], [-0.2]),
        "attn_1": effects([0.0, 0.0, 0.0, 0.0], [0.0]),
        "mlp_1": effects([0.0, 0.0, 0.0, 0.4], [0.0]),
        "resid_1": effects([1.1, 0.0, 0.0, -0.6], [0.35]),
    }
    square = (ERROR + 1, ERROR + 1)
    spec: dict[str, dict[str, Entries]] = {
        "embed": {
            "attn_0": {(2, 3): 0.25},
            "mlp_0": {},
            "resid_0": {(1, 0): 0.75, (ERROR, ERROR): -0.5},
        },
        "attn_0": {"resid_0": {(1, ERROR): -0.125}},
        "mlp_0": {"resid_0": {(1, 2): 1.5}},
        "resid_0": {
            "attn_1": {(2, 1): 0.5},
            "mlp_1": {},
            "resid_1": {(0, 1): 2.0, (3, 1): 0.0},  # a stored zero row: no edge
        },
        "attn_1": {"resid_1": {}},
        "mlp_1": {"resid_1": {(3, 3): -1.0}},
    }
    old_layout = "attn_0"  # fully sparse, as before 2025-01
    edges = {
        up: {down: hybrid(square, e, 2 if up == old_layout else 1) for down, e in d.items()}
        for up, d in spec.items()
    }
    edges["resid_1"] = {"y": hybrid((ERROR + 1,), {(0,): 1.25, (3,): -0.75, (ERROR,): 0.5}, 1)}
    return {"examples": examples(3), "nodes": nodes, "edges": edges}


def none_circuit() -> dict[str, Any]:
    """Gemma-like, per position: effects ``[pos, d]``/``[pos, 1]``, edges
    ``[pos, d+1, pos, d+1]``."""
    zeros = [[0.0] * D_DICT for _ in range(N_POS)]

    def at(pos: int, feature: int, value: float) -> list[list[float]]:
        rows = [list(row) for row in zeros]
        rows[pos][feature] = value
        return rows

    no_error = [[0.0]] * N_POS
    nodes = {
        "attn_0": effects(at(0, 2, 0.2), no_error),
        "mlp_0": effects(at(1, 0, -0.4), [[0.0], [0.3], [0.0]]),
        "resid_0": effects(at(0, 3, 0.6), no_error),
        "attn_1": effects(zeros, no_error),
        "mlp_1": effects(zeros, [[0.0], [0.0], [0.7]]),
        "resid_1": effects(at(2, 1, 0.8), [[0.0], [0.0], [-0.1]]),
    }
    shape = (N_POS, ERROR + 1) * 2
    spec: dict[str, dict[str, Entries]] = {
        "attn_0": {"mlp_0": {(1, 0, 0, 2): 0.75}, "resid_0": {}},
        "mlp_0": {"resid_0": {}},
        "resid_0": {
            "attn_1": {},
            "mlp_1": {},
            "resid_1": {(2, 1, 0, 3): 0.5, (2, 1, 2, 3): -0.25},
        },
        "attn_1": {"mlp_1": {}, "resid_1": {}},
        "mlp_1": {"resid_1": {(2, ERROR, 2, ERROR): 0.125}},
    }
    old_layout = "mlp_1"  # fully sparse, as before 2025-01
    edges = {
        up: {down: hybrid(shape, e, 4 if up == old_layout else 2) for down, e in d.items()}
        for up, d in spec.items()
    }
    y_entries: Entries = {(2, 1): 1.0, (2, ERROR): -0.5}
    edges["resid_1"] = {"y": hybrid((N_POS, ERROR + 1), y_entries, 2)}
    return {"examples": examples(2), "nodes": nodes, "edges": edges}


def main() -> None:
    check_layout()
    for path, document in ((SUM_FILE, sum_circuit()), (NONE_FILE, none_circuit())):
        save(document, path)
        print(f"{path.name}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
