"""Motif enrichment: how far each observed motif count lies from its counts in null graphs.

For a graph and a null model, ``n_samples`` null graphs are drawn and censused; the z-score of
a motif is ``(observed − mean) / std`` over those samples (Milo et al. 2002). A motif is
"enriched" beyond what a null model keeps when z > 0, and clearly so when z > 2. Different null
models keep different structure (see ``null_models``), so a motif's z-score means something
only next to the null model's name; rows carry both.

Every null model gets its own generator, ``default_rng([seed, crc32(name)])``: results are
deterministic for a seed, and a model's samples do not change when other models are added to
or removed from a run.

Across a corpus, :func:`corpus_enrichment` counts the graphs with z > 0 and z > 2 and combines
the z-scores by Stouffer's method, ``Σ z / √k`` over the k graphs with a z-score. Stouffer's
combination treats graphs as independent tests; graphs of one model on related prompts are not
independent, so read it as a summary of consistency, not as a calibrated p-value.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from circuit_atlas.analysis.motifs.census import MOTIFS, binary_edges, motif_census
from circuit_atlas.analysis.motifs.null_models import NULL_MODELS, node_classes

if TYPE_CHECKING:
    from circuit_atlas.graph import CircuitGraph

Progress = Callable[[str, int, int], None]
"""Called after every null sample with (null model, samples done, samples wanted)."""


@dataclass(frozen=True)
class MotifEnrichment:
    """One motif of one graph under one null model.

    ``null_std`` is the sample standard deviation (ddof = 1) of the ``n_samples`` null counts.
    ``z`` is ``(observed − null_mean) / null_std``, or None when ``null_std`` is 0: the null
    model then produces a single count (it cannot change this motif; e.g. no cycle can appear
    when layer-position keeps every edge running from an earlier to a later layer), so there is
    no spread to measure a distance in. Compare ``observed`` with ``null_mean`` directly then;
    an infinite z would claim a significance the sampling does not show.
    """

    motif: str
    null_model: str
    observed: int
    null_mean: float
    null_std: float
    z: float | None
    n_samples: int


@dataclass(frozen=True)
class CorpusEnrichment:
    """One motif under one null model, summarised over the graphs of a corpus.

    ``n_graphs`` counts the graphs with a z-score (``n_undefined`` those without one);
    ``mean_z`` and ``combined_z`` (Stouffer: ``Σ z / √n_graphs``) are None when none has one.
    """

    motif: str
    null_model: str
    n_graphs: int
    n_positive: int
    n_above_2: int
    mean_z: float | None
    combined_z: float | None
    n_undefined: int


def model_rng(seed: int, null_model: str) -> np.random.Generator:
    """The generator of one null model's samples, derived from ``seed`` and the model's name."""
    return np.random.default_rng([seed, zlib.crc32(null_model.encode("utf-8"))])


def summarise(
    observed: Mapping[str, int], samples: Sequence[Mapping[str, int]], null_model: str
) -> list[MotifEnrichment]:
    """Rows for every motif of :data:`MOTIFS` from the observed census and the null censuses."""
    rows = []
    for motif in MOTIFS:
        counts = np.array([sample[motif] for sample in samples], dtype=np.float64)
        mean, std = float(counts.mean()), float(counts.std(ddof=1))
        z = (observed[motif] - mean) / std if std > 0 else None
        rows.append(
            MotifEnrichment(motif, null_model, int(observed[motif]), mean, std, z, len(counts))
        )
    return rows


def adjacency_enrichment(
    adjacency: sp.csr_matrix,
    classes: np.ndarray,
    null_models: Sequence[str] = tuple(NULL_MODELS),
    n_samples: int = 20,
    seed: int = 0,
    progress: Progress | None = None,
) -> list[MotifEnrichment]:
    """:func:`motif_enrichment` of a binary ``M[source, target]`` and its node classes."""
    if n_samples < 2:
        raise ValueError(f"n_samples must be at least 2 to estimate a spread, not {n_samples}")
    unknown = [name for name in null_models if name not in NULL_MODELS]
    if unknown:
        raise ValueError(f"unknown null model(s) {unknown}; known: {sorted(NULL_MODELS)}")
    observed = motif_census(adjacency)
    rows = []
    for name in null_models:
        model, rng = NULL_MODELS[name], model_rng(seed, name)
        samples = []
        for done in range(1, n_samples + 1):
            samples.append(motif_census(model(adjacency, classes, rng)))
            if progress is not None:
                progress(name, done, n_samples)
        rows += summarise(observed, samples, name)
    return rows


def motif_enrichment(
    graph: CircuitGraph,
    null_models: Sequence[str] = tuple(NULL_MODELS),
    n_samples: int = 20,
    seed: int = 0,
    min_abs_weight: float = 0.0,
    progress: Progress | None = None,
) -> list[MotifEnrichment]:
    """z-scores of the five motifs of ``graph`` under each named null model.

    The graph is binarised first (:func:`~circuit_atlas.analysis.motifs.census.binary_edges`:
    an edge where ``|net weight| > min_abs_weight``, or every edge when it is 0); node classes
    are ``(kind, layer, pos)``. Rows come per null model, in the order given, then per motif.
    """
    adjacency = binary_edges(graph, min_abs_weight)
    classes = node_classes(graph)
    return adjacency_enrichment(adjacency, classes, null_models, n_samples, seed, progress)


def corpus_enrichment(results: Mapping[str, Sequence[MotifEnrichment]]) -> list[CorpusEnrichment]:
    """Per (null model, motif), across graphs: how many have z > 0 and z > 2, the mean z and
    Stouffer's combined z. Rows are ordered by null model, then motif, as first met."""
    groups: dict[tuple[str, str], list[float | None]] = {}
    for rows in results.values():
        for row in rows:
            groups.setdefault((row.null_model, row.motif), []).append(row.z)
    summary = []
    for (null_model, motif), values in groups.items():
        zs = [z for z in values if z is not None]
        k = len(zs)
        summary.append(
            CorpusEnrichment(
                motif=motif,
                null_model=null_model,
                n_graphs=k,
                n_positive=sum(z > 0 for z in zs),
                n_above_2=sum(z > 2 for z in zs),
                mean_z=sum(zs) / k if k else None,
                combined_z=sum(zs) / math.sqrt(k) if k else None,
                n_undefined=len(values) - k,
            )
        )
    return summary
