"""Importers and attribution jobs that turn outside material into ``CircuitGraph`` objects.

Importing this package registers every importer (see :mod:`.registry`).
"""

from circuit_atlas.ingest import circuit_tracer_pt, eap_ig, neuronpedia  # noqa: F401  (registration side effect)
from circuit_atlas.ingest.importers import IMPORTERS, Importer, load_graph

__all__ = ["IMPORTERS", "Importer", "load_graph"]
