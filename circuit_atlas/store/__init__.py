"""The store: circuit graphs in a Bolt graph database (Neo4j 5 Cypher), see ``circuit_store``."""

from circuit_atlas.store import claims, schema
from circuit_atlas.store.circuit_store import CircuitStore, WriteResult, open_store
from circuit_atlas.store.settings import ConnectionSettings

__all__ = ["claims", "schema", "CircuitStore", "ConnectionSettings", "WriteResult", "open_store"]
