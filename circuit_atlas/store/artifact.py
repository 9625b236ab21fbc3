"""The exact adjacency artifact: a graph's full tables beside the database.

Why: exact scores need the unpruned matrix at full precision, and analysis reads arrays far
faster than Cypher rows. One ``.npz`` per graph holds the nodes and edges tables as Parquet bytes
(typed, lossless, float64 weights bit for bit) plus the metadata and a versioned header; it is
written to a temporary name and renamed, so a crash never leaves half a file. The ``:Graph``
node records its path and SHA-256. Names and checksums: ``artifact_files``.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError

from circuit_atlas.errors import ArtifactUnavailable
from circuit_atlas.graph import CircuitGraph, GraphMetadata
from circuit_atlas.store.artifact_files import artifact_path, file_sha256

ARTIFACT_SCHEMA_VERSION = 1


class ArtifactHeader(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: int
    graph_id: str
    content_hash: str


def _parquet_bytes(table: pd.DataFrame) -> np.ndarray:
    buffer = io.BytesIO()
    table.to_parquet(buffer, index=False)
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


def write_artifact(graph: CircuitGraph, directory: Path, content_hash: str) -> tuple[Path, str]:
    """Write the artifact privately (folder 0700, file 0600: graphs are research data)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    path = artifact_path(directory, graph.graph_id)
    header = ArtifactHeader(
        schema_version=ARTIFACT_SCHEMA_VERSION, graph_id=graph.graph_id, content_hash=content_hash
    )
    tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
        np.savez(
            handle,
            header=np.array(header.model_dump_json()),
            metadata=np.array(graph.metadata.model_dump_json()),
            nodes=_parquet_bytes(graph.nodes),
            edges=_parquet_bytes(graph.edges),
        )
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path, file_sha256(path)


def read_artifact(path: Path, expected_sha256: str | None = None) -> CircuitGraph:
    """Load an artifact exactly; a missing, altered or malformed file is a clear error."""
    path = Path(path)
    if not path.exists():
        raise ArtifactUnavailable(f"adjacency artifact {path} is missing")
    if expected_sha256 and file_sha256(path) != expected_sha256:
        raise ArtifactUnavailable(f"adjacency artifact {path} does not match its recorded SHA-256")
    try:
        with np.load(path, allow_pickle=False) as data:
            header = ArtifactHeader.model_validate_json(str(data["header"]))
            metadata = GraphMetadata.model_validate(json.loads(str(data["metadata"])))
            nodes = pd.read_parquet(io.BytesIO(data["nodes"].tobytes()))
            edges = pd.read_parquet(io.BytesIO(data["edges"].tobytes()))
    except (ValueError, KeyError, OSError, ValidationError) as exc:
        raise ArtifactUnavailable(f"adjacency artifact {path} is unreadable: {exc}") from None
    if header.schema_version != ARTIFACT_SCHEMA_VERSION:
        raise ArtifactUnavailable(
            f"adjacency artifact {path}: schema_version {header.schema_version} is not supported"
        )
    return CircuitGraph(nodes, edges, metadata)
