"""Connection settings for the test servers."""

from __future__ import annotations

from pathlib import Path

from circuit_atlas.store import ConnectionSettings


def neo4j_settings(connection: dict[str, str], artifacts: Path) -> ConnectionSettings:
    return ConnectionSettings.from_env_values(connection, artifacts)
