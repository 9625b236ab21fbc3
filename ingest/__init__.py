"""Importers and attribution jobs that turn outside material into ``CircuitGraph`` objects.

Importing this package registers every importer (see :mod:`.importers`).
"""

from circuit_atlas.ingest import (  # noqa: F401  (registration side effect)
    auto_circuit,
    circuit_tracer_pt,
    eap_ig,
    eap_ig_pt,
    feature_circuits,
    neuronpedia,
)
from circuit_atlas.ingest.importers import IMPORTERS, Importer, load_graph

__all__ = ["IMPORTERS", "Importer", "load_graph"]
