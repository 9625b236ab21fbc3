"""Circuit Atlas: mechanistic-interpretability circuits in a graph database.

The names most code needs, one import away::

    from circuit_atlas import CircuitStore, ConnectionSettings, load_graph

They are loaded on first use (PEP 562), so ``import circuit_atlas`` — and with it every
``circuit-atlas`` command — does not pay for the database driver or the importers until it needs
them. Type checkers and IDEs read the imports under ``TYPE_CHECKING`` below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from circuit_atlas.lazy import lazy_exports

if TYPE_CHECKING:
    from circuit_atlas.errors import (
        ArtifactUnavailable,
        CircuitAtlasError,
        ConnectionFailed,
        CypherError,
        DictionaryError,
        DuplicateKey,
        GraphBusy,
        GraphConflict,
        GraphNotFound,
        ImportFormatError,
        InvalidGraphError,
        LocalServerError,
        ModelLoadError,
        QueryTimeout,
        StoreError,
        TaskError,
        WriteConflict,
    )
    from circuit_atlas.graph import CircuitGraph, NodeKey
    from circuit_atlas.ingest.importers import load_graph
    from circuit_atlas.store.circuit_store import CircuitStore
    from circuit_atlas.store.settings import ConnectionSettings

_ERRORS = (
    "ArtifactUnavailable",
    "CircuitAtlasError",
    "ConnectionFailed",
    "CypherError",
    "DictionaryError",
    "DuplicateKey",
    "GraphBusy",
    "GraphConflict",
    "GraphNotFound",
    "ImportFormatError",
    "InvalidGraphError",
    "LocalServerError",
    "ModelLoadError",
    "QueryTimeout",
    "StoreError",
    "TaskError",
    "WriteConflict",
)
_HOME = {
    "CircuitGraph": "circuit_atlas.graph",
    "NodeKey": "circuit_atlas.graph",
    "CircuitStore": "circuit_atlas.store.circuit_store",
    "ConnectionSettings": "circuit_atlas.store.settings",
    # load_graph lives in the importers module, but the package registers every format.
    "load_graph": "circuit_atlas.ingest",
    **dict.fromkeys(_ERRORS, "circuit_atlas.errors"),
}

__all__ = [
    "ArtifactUnavailable",
    "CircuitAtlasError",
    "CircuitGraph",
    "CircuitStore",
    "ConnectionFailed",
    "ConnectionSettings",
    "CypherError",
    "DictionaryError",
    "DuplicateKey",
    "GraphBusy",
    "GraphConflict",
    "GraphNotFound",
    "ImportFormatError",
    "InvalidGraphError",
    "LocalServerError",
    "ModelLoadError",
    "NodeKey",
    "QueryTimeout",
    "StoreError",
    "TaskError",
    "WriteConflict",
    "load_graph",
]


__getattr__, __dir__ = lazy_exports(__name__, globals(), _HOME)
