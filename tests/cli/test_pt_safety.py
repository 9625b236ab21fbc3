"""``.pt`` files cannot run code: a payload planted in every format torch reads is refused.

Each evil file carries a ``__reduce__`` payload that, if unpickled, runs ``touch MARKER`` (the
attack reported: a plain pickle calling ``os.system``). ``test_each_payload_is_live`` first proves
that an ordinary loader (``pickle.loads``, ``torch.load(weights_only=False)``) does create the
marker, so "no marker" in the other tests means the payload was refused, not that it was broken.
Then every evil file must be refused, with a one-line error naming it, by ``load_graph``, by
``load_model`` and by ``circuit-atlas ingest`` run as a user would, and the marker never appears.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import pickle
import random
import shlex
import tarfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from circuit_atlas.errors import ImportFormatError
from circuit_atlas.ingest import load_graph
from circuit_atlas.ingest.attribution.model_adapter import ModelLoadError, load_model
from circuit_atlas.ingest.attribution.toy_induction import weights_path
from circuit_atlas.ingest.safe_torch import load_torch_file

from helpers.cli import error_lines, run_cli

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "circuit_tracer" / "tiny.pt"


class Payload:
    """Unpickling this runs ``touch MARKER`` in a shell."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def evil_pickle(marker: Path, protocol: int = 2) -> bytes:
    return pickle.dumps({"adjacency_matrix": [[0.0]], "x": Payload(marker)}, protocol=protocol)


def torch_zip(
    path: Path,
    data_pkl: bytes,
    records: dict[str, bytes] | None = None,
    entries: dict[str, bytes] | None = None,
    compression: int = zipfile.ZIP_STORED,
    byteorder: str = "little",
) -> None:
    """A zip with torch.save's layout written by hand, plus any other ``entries``."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/version", "3\n")
        archive.writestr("archive/byteorder", byteorder)
        for key, data in (records or {}).items():
            archive.writestr(f"archive/data/{key}", data)
        for name, data in (entries or {}).items():
            archive.writestr(f"archive/{name}", data)


# Each maker writes an evil .pt file; each naive loader is what would have run its payload.
def plain_pickle(protocol: int) -> Callable[[Path, Path], None]:
    def make(path: Path, marker: Path) -> None:
        path.write_bytes(evil_pickle(marker, protocol))

    return make


def legacy_torch(path: Path, marker: Path) -> None:
    document = {"adjacency_matrix": torch.zeros(2, 2), "x": Payload(marker)}
    torch.save(document, path, _use_new_zipfile_serialization=False)


def zip_torch(path: Path, marker: Path) -> None:
    torch.save({"adjacency_matrix": torch.zeros(2, 2), "x": Payload(marker)}, path)


def zip_torch_protocol_4(path: Path, marker: Path) -> None:  # STACK_GLOBAL, not GLOBAL
    torch.save(
        {"adjacency_matrix": torch.zeros(2, 2), "x": Payload(marker)}, path, pickle_protocol=4
    )


def zip_torch_extra_pkl(path: Path, marker: Path) -> None:
    torch.save({"adjacency_matrix": torch.zeros(2, 2)}, path)  # a fine data.pkl …
    with zipfile.ZipFile(path, "a") as archive:  # … beside a malicious extra pickle
        archive.writestr(f"{path.stem}/extra.pkl", evil_pickle(marker))


def torchscript_like(path: Path, marker: Path) -> None:
    evil = evil_pickle(marker)
    torch_zip(path, evil, entries={"constants.pkl": evil, "code/__torch__/m.py": b""})


def legacy_tar(path: Path, marker: Path) -> None:
    """torch ≤ 0.1.10's tar format, which torch.load still reads: ``storages`` is unpickled."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("sys_info", "storages", "tensors", "pickle"):
            data = evil_pickle(marker)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def gzip_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(gzip.compress(evil_pickle(marker)))


def pickle_then_zip(path: Path, marker: Path) -> None:
    """A polyglot: zipfile finds the zip at the end, torch.load sees the pickle at the start."""
    torch.save({"adjacency_matrix": torch.zeros(2, 2)}, path)
    path.write_bytes(evil_pickle(marker) + path.read_bytes())


def unpickle_file(path: Path) -> None:
    pickle.loads(path.read_bytes())


def unpickle_gzip(path: Path) -> None:
    pickle.loads(gzip.decompress(path.read_bytes()))


def torch_load_unsafe(path: Path) -> None:
    torch.load(path, weights_only=False)


def unpickle_entries(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        for name in archive.namelist():
            if name.endswith(".pkl") and not name.endswith("/data.pkl"):
                pickle.loads(archive.read(name))


EVIL: dict[str, tuple[Callable[[Path, Path], None], Callable[[Path], None]]] = {
    "pickle-protocol-0": (plain_pickle(0), unpickle_file),
    "pickle-protocol-2": (plain_pickle(2), unpickle_file),
    "pickle-protocol-5": (plain_pickle(5), unpickle_file),
    "torch-legacy": (legacy_torch, torch_load_unsafe),
    "torch-zip": (zip_torch, torch_load_unsafe),
    "torch-zip-protocol-4": (zip_torch_protocol_4, torch_load_unsafe),
    "torch-zip-extra-pkl": (zip_torch_extra_pkl, unpickle_entries),
    "torchscript-like": (torchscript_like, unpickle_entries),
    "torch-tar": (legacy_tar, torch_load_unsafe),
    "gzip-pickle": (gzip_pickle, unpickle_gzip),
    "pickle-then-zip": (pickle_then_zip, torch_load_unsafe),
}


def evil_file(kind: str, folder: Path, marker: Path) -> Path:
    path = folder / f"evil-{kind}.pt"
    EVIL[kind][0](path, marker)
    return path


def assert_one_line_naming(error: BaseException, path: Path) -> None:
    message = str(error)
    assert "\n" not in message and str(path) in message, message


@pytest.mark.parametrize("kind", EVIL)
def test_each_payload_is_live(kind: str, tmp_path: Path):
    """The control: without the safe loader, each payload does run."""
    marker = tmp_path / "MARKER"
    path = evil_file(kind, tmp_path, marker)
    with contextlib.suppress(Exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        EVIL[kind][1](path)
    assert marker.exists()


@pytest.mark.parametrize("kind", EVIL)
def test_load_graph_refuses_every_format_without_running_it(kind: str, tmp_path: Path):
    marker = tmp_path / "MARKER"
    path = evil_file(kind, tmp_path, marker)
    with pytest.raises(ImportFormatError) as refused:
        load_graph(path)
    assert_one_line_naming(refused.value, path)
    assert not marker.exists()


@pytest.mark.parametrize("kind", EVIL)
def test_load_model_refuses_every_format_without_running_it(kind: str, tmp_path: Path):
    marker = tmp_path / "MARKER"
    path = evil_file(kind, tmp_path, marker)
    with pytest.raises(ModelLoadError, match="not a Circuit Atlas weights file") as refused:
        load_model(path)
    assert_one_line_naming(refused.value, path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("pickle-protocol-0", "a pickle"),
        ("pickle-protocol-2", "a pickle, not torch.save's zip format"),
        ("torch-legacy", r"torch's legacy \(pre-1\.6\) format"),
        ("torch-tar", "a tar archive"),
        ("gzip-pickle", "a gzip file"),
        ("pickle-then-zip", "a pickle"),
        ("torchscript-like", "a TorchScript archive"),
        ("torch-zip-extra-pkl", "unexpected entry evil-torch-zip-extra-pkl/extra.pkl"),
        ("torch-zip", r"posix\.system object, which is not part of a circuit-tracer or EAP-IG"),
        ("torch-zip-protocol-4", r"posix\.system object.*refusing to unpickle"),
    ],
)
def test_the_refusal_says_why(kind: str, reason: str, tmp_path: Path):
    path = evil_file(kind, tmp_path, tmp_path / "MARKER")
    with pytest.raises(ImportFormatError, match=reason):
        load_graph(path)


def not_torch(name: str, data: bytes) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr(name, data)

    return make


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.write_bytes(b""), "an empty file"),
        (lambda p: p.write_text("not a torch file"), "an unknown format"),
        (lambda p: p.write_bytes(FIXTURE.read_bytes()[:-30]), "truncated or damaged zip"),
        (lambda p: p.write_bytes(b"PK\x03\x04" + b"\0" * 60), "truncated or damaged zip"),
        (not_torch("notes.txt", b"hello"), "single top folder"),
        (not_torch("a/notes.txt", b"hello"), "unexpected entry a/notes.txt"),
        (not_torch("a/data.pkl", pickle.dumps(1)), "without torch.save's data.pkl and version"),
        (
            lambda p: torch_zip(p, pickle.dumps(1), compression=zipfile.ZIP_DEFLATED),
            "compressed or encrypted",
        ),
        (lambda p: torch_zip(p, b"\x80\x02}q\x00(X\x01\x00\x00\x00a"), "not a readable torch"),
        (lambda p: torch_zip(p, b"garbage"), "not a readable torch file"),
    ],
)
def test_files_that_are_not_torch_zips_are_refused(make, reason: str, tmp_path: Path):
    path = tmp_path / "bad.pt"
    make(path)
    with pytest.raises(ImportFormatError, match=reason) as refused:
        load_graph(path)
    assert_one_line_naming(refused.value, path)


# ------------------------------------------------------------ a generated set of globals
DANGEROUS: list[tuple[str, str, object]] = [
    ("os", "system", "touch {marker}"),
    ("posix", "system", "touch {marker}"),
    ("nt", "system", "touch {marker}"),
    ("builtins", "eval", "open({marker!r}, 'w').close()"),
    ("builtins", "exec", "open({marker!r}, 'w').close()"),
    ("builtins", "getattr", "{marker}"),
    ("builtins", "__import__", "os"),
    ("subprocess", "Popen", ["touch", "{marker}"]),
    ("subprocess", "getoutput", "touch {marker}"),
    ("torch", "load", "{marker}"),
    ("torch.serialization", "load", "{marker}"),
    ("torch._utils", "_rebuild_parameter", "{marker}"),
    ("numpy", "load", "{marker}"),
    ("functools", "partial", "{marker}"),
    ("pathlib", "Path", "{marker}"),
    ("pickle", "loads", "{marker}"),
    ("runpy", "run_path", "{marker}"),
]


def random_globals(n: int = 12, seed: int = 1234) -> list[tuple[str, str, object]]:
    """``n`` public callables drawn at random from modules an attacker would reach for."""
    import builtins
    import shutil
    import subprocess

    import numpy

    rng = random.Random(seed)
    pool = [
        (module.__name__, name)
        for module in (os, builtins, subprocess, shutil, numpy, torch.hub, pickle)
        for name, value in vars(module).items()
        if callable(value) and not name.startswith("_") and name != "object"
    ]
    return [(module, name, "{marker}") for module, name in rng.sample(sorted(pool), n)]


def call_global(module: str, name: str, arg: object, opcode: str) -> bytes:
    """A pickle that calls ``module.name(arg)``, naming it with ``opcode``."""
    argument = pickle.dumps(arg, protocol=2)[2:-1]  # without PROTO and STOP
    if opcode == "GLOBAL":
        return b"\x80\x02c" + f"{module}\n{name}\n".encode() + argument + b"\x85R."
    if opcode == "STACK_GLOBAL":
        strings = b"".join(
            b"X" + len(s.encode()).to_bytes(4, "little") + s.encode() for s in (module, name)
        )
        return b"\x80\x04" + strings + b"\x93" + argument + b"\x85R."
    return b"(" + pickle.dumps(arg, protocol=0)[:-1] + f"i{module}\n{name}\n.".encode()  # INST


def fill(arg: object, marker: Path) -> object:
    if isinstance(arg, list):
        return [fill(a, marker) for a in arg]
    return arg.format(marker=str(marker)) if isinstance(arg, str) else arg


@pytest.mark.parametrize("opcode", ["GLOBAL", "STACK_GLOBAL", "INST"])
@pytest.mark.parametrize(
    ("module", "name", "arg"), DANGEROUS + random_globals(), ids=lambda v: str(v)[:30]
)
def test_any_global_in_a_zip_file_is_refused(module, name, arg, opcode, tmp_path: Path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "global.pt"
    torch_zip(path, call_global(module, name, fill(arg, marker), opcode))
    with pytest.raises(ImportFormatError, match="refusing to unpickle") as refused:
        load_graph(path)
    assert f"{module}.{name}" in str(refused.value)
    with pytest.raises(ModelLoadError, match="refusing to unpickle"):
        load_model(path)
    assert not marker.exists()


@pytest.mark.parametrize("opcode", ["GLOBAL", "STACK_GLOBAL", "INST"])
def test_the_generated_payloads_are_live(opcode: str, tmp_path: Path):
    marker = tmp_path / "MARKER"
    pickle.loads(call_global("builtins", "exec", fill(DANGEROUS[4][2], marker), opcode))
    assert marker.exists()


# ------------------------------------------------------------ the CLI, as a user runs it
def cli_ingest(target: Path, data_dir: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEO4J_")}
    return run_cli("--data-dir", str(data_dir), "ingest", str(target), env=env, timeout=120)


def test_cli_ingest_of_a_folder_of_evil_files_runs_nothing(tmp_path: Path):
    marker = tmp_path / "MARKER"
    folder = tmp_path / "downloads"
    folder.mkdir()
    paths = [evil_file(kind, folder, marker) for kind in EVIL]
    result = cli_ingest(folder, tmp_path / "data")
    assert result.returncode != 0
    [line] = error_lines(result)
    assert line.startswith("error: ") and any(str(p) in line for p in paths), line
    assert not marker.exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind", EVIL)
def test_cli_ingest_of_each_evil_file_is_one_line(kind: str, tmp_path: Path):
    marker = tmp_path / "MARKER"
    path = evil_file(kind, tmp_path, marker)
    result = cli_ingest(path, tmp_path / "data")
    assert result.returncode != 0
    [line] = error_lines(result)
    assert str(path) in line, line
    assert not marker.exists()


# ------------------------------------------------------------ what must still load
def test_real_files_load_as_torch_loads_them(tmp_path: Path):
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    document = {
        "float32": base,
        "transposed": base.t(),  # non-contiguous view of the same storage
        "slice": base[1:3, 2:],  # offset view
        "float16": base.half(),
        "bfloat16": base.bfloat16(),
        "float64": base.double(),
        "int64": torch.arange(5),
        "int8": torch.tensor([-3, 4], dtype=torch.int8),
        "uint8": torch.tensor([250], dtype=torch.uint8),
        "uint16": torch.zeros(3, dtype=torch.uint16),  # no legacy storage class: rebuild v3
        "bool": torch.tensor([True, False]),
        "complex": torch.tensor([1 + 2j, 3 - 1j]),
        "conj": torch.tensor([1 + 2j]).conj(),  # metadata: the conj bit
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 5),
        "expanded": torch.ones(1, 3).expand(4, 3),  # stride 0
        "nested": [torch.ones(2), ("text", 3, None, 1.5)],
        "size": torch.Size([2, 3]),
        "dtype": torch.bfloat16,
        "device": torch.device("cpu"),
    }
    path = tmp_path / "many.pt"
    torch.save(document, path)
    ours, theirs = load_torch_file(path), torch.load(path, weights_only=True)
    for key, expected in theirs.items():
        got = ours[key]
        if isinstance(expected, torch.Tensor):
            assert got.dtype == expected.dtype and got.stride() == expected.stride(), key
            assert got.storage_offset() == expected.storage_offset(), key
            assert got.is_conj() == expected.is_conj(), key
            assert torch.equal(got.resolve_conj(), expected.resolve_conj()), key
        else:
            assert repr(got) == repr(expected), key
    assert ours["transposed"].untyped_storage().data_ptr() == ours["float32"].data_ptr()


def test_big_endian_records_are_swapped(tmp_path: Path):
    path, swapped = tmp_path / "native.pt", tmp_path / "big.pt"
    values = torch.tensor([1.5, -2.25, 1e30])
    torch.save(values, path)
    with zipfile.ZipFile(path) as archive:
        data_pkl = archive.read("native/data.pkl")
        record = archive.read("native/data/0")
    big = torch.frombuffer(bytearray(record), dtype=torch.int32).numpy().byteswap().tobytes()
    torch_zip(swapped, data_pkl, {"0": big}, byteorder="big")
    assert torch.equal(load_torch_file(swapped), values)


class _StorageRef:
    pass


def test_a_tensor_larger_than_its_storage_is_refused(tmp_path: Path):
    """``Tensor.set_`` would grow the storage to fit; the loader refuses instead."""

    class Lying:
        def __reduce__(self) -> tuple:
            hooks = __import__("collections").OrderedDict()
            return torch._utils._rebuild_tensor_v2, (_StorageRef(), 0, (1000,), (1,), False, hooks)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> tuple | None:
            if isinstance(obj, _StorageRef):
                return ("storage", torch.FloatStorage, "0", "cpu", 4)
            return None

    buffer = io.BytesIO()
    Pickler(buffer, protocol=2).dump(Lying())
    path = tmp_path / "lying.pt"
    torch_zip(path, buffer.getvalue(), {"0": bytes(16)})
    with pytest.raises(ImportFormatError, match=r"size \(1000,\) does not fit its 4-element"):
        load_torch_file(path)
    torch_zip(path, buffer.getvalue(), {"0": bytes(8)})  # record shorter than declared
    with pytest.raises(ImportFormatError, match="not the 16 bytes data.pkl declares"):
        load_torch_file(path)


def test_the_shipped_weights_load_as_torch_loads_them():
    model = load_model(weights_path())
    saved = torch.load(weights_path(), weights_only=True)
    for name, parameter in model.model.named_parameters():
        assert torch.equal(parameter, saved["state_dict"][name]), name


def test_the_circuit_tracer_fixture_loads():
    graph = load_graph(FIXTURE)
    assert graph.metadata.source_format == "circuit-tracer-pt" and graph.n_edges > 0
