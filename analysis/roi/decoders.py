"""Decoder directions of cross-prompt ROI members, and the mean within-ROI cosine similarity.

Why: a cross-prompt ROI groups features that occur (or act) together across prompts. Whether
its members also *write in similar directions* is a separate, geometric question, answered by
the mean pairwise cosine similarity of their decoder vectors. The graphs do not hold decoder
vectors (the shared Neuronpedia JSON files carry none), so the number is null unless a file of
them is given (``circuit-atlas roi --decoders FILE``).

File format — a NumPy ``.npz`` archive (``numpy.savez``), ``schema_version`` 1:

==================  ==========================  ================================================
``schema_version``  integer scalar              ``1``
``layer``           integer array, shape (n,)   the feature's layer (the graphs' ``layer``)
``feature``         integer array, shape (n,)   its index in that layer (the graphs' ``feature``)
``vectors``         float array, shape (n, d)   one decoder direction per feature, any length d
``model``           string scalar, optional     if given, every graph must be of this model
``transcoder_set``  string scalar, optional     if given, every graph must use this set
==================  ==========================  ================================================

A feature is identified as in the cross-prompt affinity, by ``(layer, feature)`` within one
model and transcoder set (:func:`.affinity.feature_id`). For a cross-layer transcoder, one
vector per feature is needed: e.g. its decoders into every layer concatenated (zeros for the
layers it does not write to). Vectors must be finite and non-zero; only the direction counts.
Features of the run that the file lacks are skipped and counted; if it has none of them, that is
an error.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from circuit_atlas.analysis.roi.affinity import feature_id
from circuit_atlas.errors import CircuitAtlasError

SCHEMA_VERSION = 1
REQUIRED = ("schema_version", "layer", "feature", "vectors")
OPTIONAL = ("model", "transcoder_set")


@dataclass(frozen=True)
class Decoders:
    """Validated decoder directions: ``vectors[row[feature_id]]`` is that feature's direction."""

    source: str  # the file, for messages
    row: dict[str, int]
    vectors: np.ndarray  # (n, d), float64
    model: str | None = None
    transcoder_set: str | None = None

    def check_graphs(self, models: list[str | None], transcoder_sets: list[str | None]) -> None:
        """Decoders recorded for one model/transcoder set describe no other one's features."""
        for field, mine, theirs in (
            ("model", self.model, models),
            ("transcoder_set", self.transcoder_set, transcoder_sets),
        ):
            other = sorted({str(t) for t in theirs if t != mine})
            if mine is not None and other:
                raise CircuitAtlasError(
                    f"{self.source}: field '{field}' is {mine!r} but the graphs have "
                    f"{', '.join(other)}"
                )


def decoders_from_arrays(
    layer: np.ndarray,
    feature: np.ndarray,
    vectors: np.ndarray,
    source: str = "decoders",
    model: str | None = None,
    transcoder_set: str | None = None,
) -> Decoders:
    """The one place decoder arrays are validated (the loader and tests both come here)."""

    def bad(field: str, why: str) -> CircuitAtlasError:
        return CircuitAtlasError(f"{source}: field '{field}' {why}")

    layer, feature, vectors = np.asarray(layer), np.asarray(feature), np.asarray(vectors)
    for name, values in (("layer", layer), ("feature", feature)):
        if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
            raise bad(
                name, f"must be a 1-d integer array (got {values.dtype}, shape {values.shape})"
            )
    if layer.shape != feature.shape:
        raise bad("feature", f"has {feature.size} entries but 'layer' has {layer.size}")
    if vectors.ndim != 2 or vectors.shape[0] != layer.size:
        raise bad("vectors", f"must have shape ({layer.size}, d) (got {vectors.shape})")
    if not np.issubdtype(vectors.dtype, np.number) or vectors.shape[1] == 0:
        raise bad("vectors", f"must be a non-empty numeric array (got {vectors.dtype})")
    vectors = vectors.astype(np.float64, copy=False)
    if not np.isfinite(vectors).all():
        raise bad("vectors", "has NaN or infinite entries")
    zero = np.flatnonzero(~(np.abs(vectors).sum(axis=1) > 0))
    if zero.size:
        raise bad(
            "vectors", f"row {int(zero[0])} is all zero (a direction needs a non-zero vector)"
        )
    ids = [feature_id(a, b) for a, b in zip(layer.tolist(), feature.tolist())]
    row = {fid: i for i, fid in enumerate(ids)}
    if len(row) != len(ids):
        twice = next(f for f, n in Counter(ids).items() if n > 1)
        raise bad("layer/feature", f"lists feature {twice} (layer|feature) twice")
    return Decoders(source, row, vectors, model, transcoder_set)


def _scalar(archive: np.lib.npyio.NpzFile, name: str, source: str) -> str | None:
    if name not in archive.files:
        return None
    value = archive[name]
    if value.ndim != 0 or value.dtype.kind != "U":
        raise CircuitAtlasError(f"{source}: field '{name}' must be a string scalar")
    return str(value)


def load_decoders(path: Path) -> Decoders:
    """Read and validate a decoder file (format in the module docstring)."""
    source = str(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise CircuitAtlasError(f"{source}: not a readable .npz archive ({error})") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise CircuitAtlasError(f"{source}: expected a .npz archive (numpy.savez), not one array")
    with archive:
        missing = [name for name in REQUIRED if name not in archive.files]
        if missing:
            raise CircuitAtlasError(f"{source}: missing field(s) {', '.join(missing)}")
        unknown = sorted(set(archive.files) - set(REQUIRED) - set(OPTIONAL))
        if unknown:
            raise CircuitAtlasError(f"{source}: unknown field(s) {', '.join(unknown)}")
        version = archive["schema_version"]
        if version.ndim != 0 or version.dtype.kind not in "iu" or int(version) != SCHEMA_VERSION:
            raise CircuitAtlasError(
                f"{source}: field 'schema_version' must be {SCHEMA_VERSION} (got {version!r})"
            )
        return decoders_from_arrays(
            archive["layer"],
            archive["feature"],
            archive["vectors"],
            source,
            _scalar(archive, "model", source),
            _scalar(archive, "transcoder_set", source),
        )


@dataclass(frozen=True)
class DecoderCosine:
    """Per ROI: mean pairwise cosine of its members' decoders (None below two vectors) and how
    many members had one; ``mean`` weights ROIs by that count."""

    per_roi: list[float | None]
    with_vector: list[int]
    mean: float | None
    missing: int  # run members the file lacks
    source: str

    def as_dict(self) -> dict[str, object]:
        return {
            "per_roi": self.per_roi,
            "with_vector": self.with_vector,
            "mean": self.mean,
            "missing": self.missing,
            "file": self.source,
        }


def within_roi_cosine(
    vectors: np.ndarray, labels: np.ndarray, n_rois: int
) -> tuple[np.ndarray, np.ndarray]:
    """(mean pairwise cosine per ROI, NaN below two members; members per ROI).

    With unit vectors u_i of the m members of an ROI, Σ_{i≠j} u_i·u_j = ‖Σ_i u_i‖² − m, so the
    mean over the m(m − 1) ordered pairs needs one sum per ROI, not an m × m matrix."""
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    sums = np.zeros((n_rois, units.shape[1]))
    np.add.at(sums, labels, units)
    counts = np.bincount(labels, minlength=n_rois).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = ((sums**2).sum(axis=1) - counts) / (counts * (counts - 1))
    return np.where(counts >= 2, mean, np.nan), counts.astype(np.int64)


def present(ids: tuple[str, ...], decoders: Decoders) -> np.ndarray:
    """Positions of ``ids`` that have a decoder vector; an error if none has one."""
    found = np.array([i for i, fid in enumerate(ids) if fid in decoders.row], dtype=np.int64)
    if found.size == 0:
        raise CircuitAtlasError(
            f"{decoders.source}: none of the {len(ids)} features of this run has a decoder "
            "vector (they are matched by layer and feature index)"
        )
    return found


def decoder_cosine(
    ids: tuple[str, ...], labels: np.ndarray, n_rois: int, decoders: Decoders
) -> DecoderCosine:
    """Mean within-ROI decoder cosine of a cross-prompt run; members without a vector skipped."""
    found = present(ids, decoders)
    vectors = decoders.vectors[[decoders.row[ids[i]] for i in found]]
    per_roi, counts = within_roi_cosine(vectors, labels[found], n_rois)
    scored = ~np.isnan(per_roi)
    mean = float(np.average(per_roi[scored], weights=counts[scored])) if scored.any() else None
    return DecoderCosine(
        per_roi=[None if np.isnan(v) else float(v) for v in per_roi],
        with_vector=counts.tolist(),
        mean=mean,
        missing=len(ids) - int(found.size),
        source=decoders.source,
    )
