"""Reading ``.pt`` files without running code from them: torch.save's zip format only.

Every ``.pt`` reader in the project calls :func:`load_torch_file`. It never calls
``torch.load``, whose first step is to dispatch on the file's format: a legacy (pre-1.6) file, a
tar file or a plain pickle goes to ``pickle_module.load`` before anything else runs, so a
restricted ``Unpickler`` handed to it does not cover those paths (a 63-byte pickle calling
``os.system`` ran through them), and TorchScript archives go to ``torch.jit.load``. Instead:

1. **Format, before any unpickling.** The file must start with the zip local-file-header magic
   ``PK\\x03\\x04``, be a readable zip (``zipfile.is_zipfile``), and have exactly the layout
   ``torch.save`` writes (since torch 1.6): one top folder holding ``data.pkl``, a ``version`` or
   ``.format_version`` record, ``data/<key>`` storage records and a few fixed metadata records,
   all stored uncompressed. Plain and gzip pickles, the legacy and tar formats, TorchScript
   archives (``constants.pkl``, ``code/``), zips carrying any other entry, empty and truncated
   files are refused with a one-line :class:`ImportFormatError` naming the file.
2. **One restricted unpickler, on ``data.pkl`` only.** ``find_class`` resolves names from an
   allow-list (tensor rebuilding, ``OrderedDict``, ``torch.Size``/``device``/dtypes, storage type
   names, plus the caller's stand-in classes); every other name is refused, so no callable the
   file names is ever looked up, let alone called (the "Restricting Globals" recipe of the
   ``pickle`` docs). Storage type names resolve to inert stand-ins, not torch's classes.
   Sparse COO tensors (``torch._utils._rebuild_sparse_tensor`` with the layout named through
   ``torch.serialization._get_layout``: how feature-circuits saves its edges) are rebuilt from
   their indices and values, dense tensors checked like any other, and only after checking that
   every index lies inside the declared size (torch itself defers that check, and an index
   outside it makes later reads touch memory outside the values); any other layout is refused.
3. **Storages read by us.** ``persistent_load`` reads ``data/<key>`` straight from its offset in
   the file into a non-resizable byte buffer, after checking that the record's length is what the
   pickle declares and lies inside the file (so a lying header cannot make us allocate more than
   the file holds); tensors are rebuilt only after checking that their size and strides fit that
   buffer (``Tensor.set_`` would otherwise silently grow the storage).

Why not ``torch.load(..., weights_only=True)`` with ``torch.serialization.safe_globals`` for the
stand-ins? It would be shorter, and its unpickler is sound, but step 1 would still have to come
first (``torch.load`` picks the format before the unpickler matters), its allow-list is torch's
(wider than ours, growing with each release, not ours to review), and it has been bypassed before
(CVE-2025-32434, torch ≤ 2.5.1). Ours is under twenty names and about a hundred lines mirroring
``torch.serialization._load``'s ``persistent_load``; ``tests/cli/test_pt_safety.py`` checks it
against ``torch.load`` on dtypes, views, offsets and strides as torch.save writes them.
"""

from __future__ import annotations

import io
import math
import pickle
import struct
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuit_atlas.errors import ImportFormatError

if TYPE_CHECKING:
    import torch

ZIP_MAGIC = b"PK\x03\x04"
# Records torch.save writes beside data.pkl and data/<key> (never unpickled).
VERSION_RECORDS = frozenset({"version", ".format_version", ".data/version"})
METADATA_RECORDS = VERSION_RECORDS | {".storage_alignment", "byteorder", ".data/serialization_id"}
# The legacy storage class names torch.save writes, and the dtype each stands for.
STORAGE_DTYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
    "ComplexDoubleStorage": "complex128",
    "ComplexFloatStorage": "complex64",
}
_MAX_NAME = 120  # longest global name quoted back in an error


class _Refused(Exception):
    """Why a file is refused; turned into an ``ImportFormatError`` naming the file."""


def load_torch_file(
    path: str | Path,
    *,
    stand_ins: Mapping[tuple[str, str], Any] | None = None,
    expected: str = "a tensor or plain data",
) -> Any:
    """The object ``torch.save`` wrote to ``path``, read without running any code from the file.

    ``stand_ins`` maps further ``(module, name)`` globals to the classes to build instead (e.g.
    a peer tool's record types); ``expected`` says what the file should hold, for the message
    that refuses any other global. Tensors come back on the CPU. Every failure is a one-line
    :class:`ImportFormatError` naming the file.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            archive = _check_layout(handle)
            return _Unpickler(handle, archive, dict(stand_ins or {}), expected).load()
    except FileNotFoundError:
        raise ImportFormatError(path, "no such file") from None
    except IsADirectoryError:
        raise ImportFormatError(path, "is a directory, not a torch file") from None
    except _Refused as refused:
        raise ImportFormatError(path, str(refused)) from None
    except Exception as exc:  # a hostile file can make any rebuild step raise: all are refusals
        raise ImportFormatError(path, f"not a readable torch file ({_one_line(exc)})") from None


class _TorchArchive:
    """A checked torch zip: the entries below its top folder, by relative name; its size."""

    def __init__(self, entries: dict[str, zipfile.ZipInfo], size: int) -> None:
        self.entries = entries
        self.size = size


def _check_layout(handle: io.BufferedReader) -> _TorchArchive:
    """Check that ``handle`` holds torch.save's zip layout (module docstring, step 1); reads
    only zip headers, never a pickle. Raises :class:`_Refused`."""
    head = handle.read(512)
    if not head.startswith(ZIP_MAGIC):
        raise _Refused(
            f"{_describe(head)}, not torch.save's zip format; only that format (torch ≥ 1.6) is "
            "read, because loading the others runs pickle code from the file"
        )
    handle.seek(0)
    if not zipfile.is_zipfile(handle):
        raise _Refused("not a readable torch file (truncated or damaged zip archive)")
    handle.seek(0, io.SEEK_END)
    size = handle.tell()
    handle.seek(0)
    try:
        infos = zipfile.ZipFile(handle).infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise _Refused(f"not a readable torch file (damaged zip: {_one_line(exc)})") from None
    names = [info.filename for info in infos]
    if not names:
        raise _Refused("an empty zip archive, not a torch.save file")
    prefix = names[0].split("/", 1)[0]
    entries = {name.removeprefix(prefix + "/"): info for name, info in zip(names, infos)}
    if any(not name.startswith(prefix + "/") for name in names) or len(entries) != len(names):
        raise _Refused("a zip archive without torch.save's single top folder")
    if "constants.pkl" in entries or any(name.startswith("code/") for name in entries):
        raise _Refused(
            "a TorchScript archive (constants.pkl, code/), not a torch.save file; TorchScript "
            "is not read, because loading it runs code from the file"
        )
    for name, info in entries.items():
        is_storage = name.startswith("data/") and "/" not in name[5:] and name != "data/"
        if name != "data.pkl" and name not in METADATA_RECORDS and not is_storage:
            shown = _printable(info.filename)
            raise _Refused(f"unexpected entry {shown} in a torch zip (not torch.save's)")
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
            shown = _printable(info.filename)
            raise _Refused(f"entry {shown} is compressed or encrypted (torch stores all)")
    if "data.pkl" not in entries or not VERSION_RECORDS & entries.keys():
        raise _Refused("a zip archive without torch.save's data.pkl and version records")
    return _TorchArchive(entries, size)


def _read_record(handle: io.BufferedReader, archive: _TorchArchive, name: str) -> bytearray:
    """The bytes of a stored entry, read from its offset after bounds checks."""
    info = archive.entries[name]
    handle.seek(info.header_offset)
    header = handle.read(30)
    if len(header) != 30 or not header.startswith(ZIP_MAGIC):
        raise _Refused(f"entry {_printable(info.filename)}: damaged zip header")
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    start = info.header_offset + 30 + name_length + extra_length
    if info.compress_size != info.file_size or start + info.file_size > archive.size:
        raise _Refused(f"entry {_printable(info.filename)}: truncated or damaged")
    buffer = bytearray(info.file_size)
    handle.seek(start)
    if handle.readinto(buffer) != info.file_size:
        raise _Refused(f"entry {_printable(info.filename)}: truncated")
    return buffer


class _StorageType:
    """Inert stand-in for a storage class named in the pickle: only its dtype is used."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


class _Storage:
    """One ``data/<key>`` record as a non-resizable byte tensor, and the dtype it was saved as."""

    def __init__(self, data: torch.Tensor, dtype: torch.dtype) -> None:
        self.data = data
        self.dtype = dtype


class _Unpickler(pickle.Unpickler):
    """The restricted unpickler of ``data.pkl`` (module docstring, steps 2 and 3)."""

    def __init__(
        self,
        handle: io.BufferedReader,
        archive: _TorchArchive,
        stand_ins: dict[tuple[str, str], Any],
        expected: str,
    ) -> None:
        import torch

        self._handle = handle
        self._archive = archive
        self._expected = expected
        self._storages: dict[str, _Storage] = {}
        byteorder = archive.entries.get("byteorder")
        self._byteorder = (
            bytes(_read_record(handle, archive, "byteorder")).decode("ascii", "replace")
            if byteorder
            else "little"  # torch's default for files written before it recorded the order
        )
        if self._byteorder not in ("little", "big"):
            raise _Refused(f"unknown byteorder record {self._byteorder!r}")
        untyped = _StorageType(torch.uint8)
        self._globals: dict[tuple[str, str], Any] = {
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor_v2,
            ("torch._utils", "_rebuild_tensor_v3"): self._rebuild_tensor_v3,
            ("torch._utils", "_rebuild_sparse_tensor"): _rebuild_sparse_tensor,
            ("torch.serialization", "_get_layout"): _get_layout,
            ("collections", "OrderedDict"): OrderedDict,
            ("torch", "Size"): torch.Size,
            ("torch", "device"): torch.device,
            ("torch", "UntypedStorage"): untyped,
            ("torch.storage", "UntypedStorage"): untyped,
            **{
                ("torch", name): _StorageType(getattr(torch, dtype))
                for name, dtype in STORAGE_DTYPES.items()
            },
            **stand_ins,
        }
        data = _read_record(handle, archive, "data.pkl")
        super().__init__(io.BytesIO(data), encoding="utf-8")

    def find_class(self, module: str, name: str) -> Any:
        import torch

        if (module, name) in self._globals:
            return self._globals[(module, name)]
        # vars(), not getattr(): torch's module __getattr__ would import any submodule named
        if module == "torch" and isinstance(vars(torch).get(name), torch.dtype):
            return vars(torch)[name]
        shown = _printable(f"{module}.{name}"[:_MAX_NAME])
        raise _Refused(
            f"the file holds a {shown} object, which is not {self._expected}; "
            "refusing to unpickle it"
        )

    def persistent_load(self, pid: Any) -> _Storage:
        import torch

        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] in ("storage", b"storage")):
            raise _Refused("data.pkl refers to something other than a tensor storage")
        _, storage_type, key, location, numel = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str):
            raise _Refused("data.pkl names a storage of an unknown type")
        if not isinstance(location, (str, bytes)) or type(numel) is not int or numel < 0:
            raise _Refused(f"storage {key!r}: malformed location or size")
        cached = self._storages.get(key)
        if cached is not None:
            if cached.dtype != storage_type.dtype:
                raise _Refused(f"storage {key!r} is read as two different dtypes")
            return cached
        name = f"data/{key}"
        if name not in self._archive.entries:
            raise _Refused(f"data.pkl refers to a missing storage record {key!r}")
        nbytes = numel * storage_type.dtype.itemsize
        if self._archive.entries[name].file_size != nbytes:
            raise _Refused(f"storage {key!r} is not the {nbytes} bytes data.pkl declares")
        buffer = _read_record(self._handle, self._archive, name)
        # frombuffer: the storage cannot be resized, so no tensor can reach past the record
        data = torch.frombuffer(buffer, dtype=torch.uint8) if nbytes else torch.empty(0).byte()
        if self._byteorder != sys.byteorder:
            data.untyped_storage().byteswap(storage_type.dtype)
        storage = self._storages[key] = _Storage(data, storage_type.dtype)
        return storage

    # Tensor rebuilding: torch._utils' functions, with every argument checked first. -------
    def _rebuild_tensor_v2(
        self,
        storage: Any,
        offset: Any,
        size: Any,
        stride: Any,
        requires_grad: Any,
        backward_hooks: Any,
        metadata: Any = None,
    ) -> torch.Tensor:
        if not isinstance(storage, _Storage):
            raise _Refused("a tensor is rebuilt from something that is not a storage")
        return self._tensor(
            storage, storage.dtype, offset, size, stride, requires_grad, backward_hooks, metadata
        )

    def _rebuild_tensor_v3(
        self,
        storage: Any,
        offset: Any,
        size: Any,
        stride: Any,
        requires_grad: Any,
        backward_hooks: Any,
        dtype: Any,
        metadata: Any = None,
    ) -> torch.Tensor:
        import torch

        if not isinstance(storage, _Storage) or not isinstance(dtype, torch.dtype):
            raise _Refused("a tensor is rebuilt from something that is not a storage")
        return self._tensor(
            storage, dtype, offset, size, stride, requires_grad, backward_hooks, metadata
        )

    def _tensor(
        self,
        storage: _Storage,
        dtype: torch.dtype,
        offset: Any,
        size: Any,
        stride: Any,
        requires_grad: Any,
        backward_hooks: Any,
        metadata: Any,
    ) -> torch.Tensor:
        import torch

        if not (_ints(size) and _ints(stride) and len(size) == len(stride) and _ints((offset,))):
            raise _Refused("a tensor has a malformed size, stride or offset")
        no_hooks = backward_hooks is None or (
            isinstance(backward_hooks, dict) and not backward_hooks
        )
        if type(requires_grad) is not bool or not no_hooks:
            raise _Refused("a tensor carries backward hooks or a malformed grad flag")
        if metadata is not None and not (
            isinstance(metadata, dict)
            and all(isinstance(k, str) and type(v) is bool for k, v in metadata.items())
        ):
            raise _Refused("a tensor has malformed metadata")
        n_elements = storage.data.numel() // dtype.itemsize
        last = offset + sum((n - 1) * s for n, s in zip(size, stride))
        if 0 not in size and last >= n_elements:
            raise _Refused(
                f"a tensor of size {tuple(size)} does not fit its {n_elements}-element storage"
            )
        tensor = torch.empty((0,), dtype=dtype)
        tensor.set_(storage.data.untyped_storage(), offset, tuple(size), tuple(stride))
        if metadata:
            torch._utils.set_tensor_metadata(tensor, metadata)
        tensor.requires_grad = requires_grad
        return tensor


class _SparseLayout:
    """What ``torch.serialization._get_layout`` names in a file: an inert marker, only ever
    compared by identity (``torch.layout`` objects are not handed to the pickle)."""

    def __init__(self, name: str) -> None:
        self.name = name


_SPARSE_COO = _SparseLayout("torch.sparse_coo")
# sparse_coo_tensor's size limit: the element count must fit an int64.
_MAX_ELEMENTS = 2**63 - 1


def _get_layout(name: Any) -> _SparseLayout:
    """``torch.serialization._get_layout``, for the one layout read: COO."""
    if name != _SPARSE_COO.name:
        shown = _printable(str(name)[:_MAX_NAME]) if isinstance(name, str) else type(name).__name__
        raise _Refused(f"a sparse tensor of layout {shown}; only COO sparse tensors are read")
    return _SPARSE_COO


def _rebuild_sparse_tensor(layout: Any, data: Any) -> torch.Tensor:
    """``torch._utils._rebuild_sparse_tensor`` for COO: ``data`` is ``(indices, values, size,
    is_coalesced)`` (older torch: without the flag); every part is checked before torch sees it,
    and torch checks the invariants again (``check_invariants=True``)."""
    import torch

    if layout is not _SPARSE_COO:
        raise _Refused("a sparse tensor without the COO layout marker")
    if not isinstance(data, tuple) or len(data) not in (3, 4):
        raise _Refused("a sparse tensor without (indices, values, size[, is_coalesced])")
    indices, values, size = data[:3]
    coalesced = data[3] if len(data) == 4 else None
    parts = (indices, values)
    if not all(isinstance(t, torch.Tensor) and t.layout == torch.strided for t in parts):
        raise _Refused("a sparse tensor whose indices or values are not dense tensors")
    if coalesced is not None and type(coalesced) is not bool:
        raise _Refused("a sparse tensor with a malformed is_coalesced flag")
    _check_sparse_parts(indices, values, size)
    return torch.sparse_coo_tensor(
        indices, values, tuple(size), is_coalesced=coalesced, check_invariants=True
    )


def _check_sparse_parts(indices: torch.Tensor, values: torch.Tensor, size: Any) -> None:
    """Shapes that agree, and every index inside ``size`` (the check torch defers)."""
    import torch

    if indices.dtype != torch.int64 or indices.ndim != 2 or values.ndim < 1:
        raise _Refused("a sparse tensor with malformed indices or values")
    sparse_dim, nnz = indices.shape
    if not _ints(size) or len(size) != sparse_dim + values.ndim - 1 or sparse_dim < 1:
        raise _Refused("a sparse tensor whose size does not match its indices and values")
    if values.shape[0] != nnz or tuple(values.shape[1:]) != tuple(size[sparse_dim:]):
        raise _Refused(
            f"a sparse tensor of size {tuple(size)} with {nnz} indices but values of shape "
            f"{tuple(values.shape)}"
        )
    if math.prod(size) > _MAX_ELEMENTS:
        raise _Refused(f"a sparse tensor of size {tuple(size)} (more elements than int64 counts)")
    if nnz:
        bounds = torch.tensor(size[:sparse_dim], dtype=torch.int64).unsqueeze(1)
        outside = (indices < 0) | (indices >= bounds)
        if outside.any():
            dim, entry = (int(i) for i in outside.nonzero()[0])
            raise _Refused(
                f"a sparse tensor of size {tuple(size)} has index {int(indices[dim, entry])} "
                f"in dimension {dim}, outside it"
            )


def _ints(values: Any) -> bool:
    """A tuple (``torch.Size`` included) of non-negative ints, of a sane length."""
    return (
        isinstance(values, tuple)
        and len(values) <= 64
        and all(type(v) is int and v >= 0 for v in values)
    )


def _describe(head: bytes) -> str:
    """What a non-zip file looks like, for the refusal message."""
    if not head:
        return "an empty file"
    if head.startswith(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"):
        return "torch's legacy (pre-1.6) format"
    if head.startswith(b"\x80"):
        return "a pickle"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip file"
    if len(head) >= 262 and head[257:262] == b"ustar":
        return "a tar archive"
    if head[:1] in (b"(", b"c", b"]", b"}", b"I", b"S", b"V"):
        return "a pickle (protocol 0 or 1)"
    return "an unknown format"


def _printable(text: str) -> str:
    return text if text.isprintable() else repr(text)


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return _printable(lines[0][:200]) if lines else type(exc).__name__
