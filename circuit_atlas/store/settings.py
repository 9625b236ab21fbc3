"""Where the store connects: flags first, then ``NEO4J_*`` environment variables, then the
zero-setup local server. Credentials are kept out of ``repr`` so they never reach logs.

``read_user``/``read_password`` (``CIRCUIT_ATLAS_READ_USER``/``_PASSWORD``) name a principal that
the server lets only read: read-only user Cypher runs as it. The local server has one built in;
on Neo4j, READ access mode already makes the server refuse writes (``docs/security.md``)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from circuit_atlas.local_server import DEFAULT_DATABASE, default_data_dir


@dataclass(frozen=True)
class ConnectionSettings:
    uri: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    database: str | None = None
    data_dir: Path | None = None
    artifact_dir: Path | None = None
    read_user: str | None = None
    read_password: str | None = field(default=None, repr=False)

    @classmethod
    def resolve(
        cls,
        uri: str | None = None,
        user: str | None = None,
        password: str | None = None,
        database: str | None = None,
        data_dir: str | Path | None = None,
        artifact_dir: str | Path | None = None,
        read_user: str | None = None,
        read_password: str | None = None,
    ) -> ConnectionSettings:
        env = os.environ
        data = Path(data_dir or env.get("CIRCUIT_ATLAS_DATA_DIR") or default_data_dir())
        return cls(
            uri=uri or env.get("NEO4J_URI") or None,
            user=user or env.get("NEO4J_USER") or env.get("NEO4J_USERNAME"),
            password=password or env.get("NEO4J_PASSWORD"),
            database=database or env.get("NEO4J_DATABASE"),
            data_dir=data.expanduser().resolve(),
            artifact_dir=Path(artifact_dir).expanduser().resolve() if artifact_dir else None,
            read_user=read_user or env.get("CIRCUIT_ATLAS_READ_USER") or None,
            read_password=read_password or env.get("CIRCUIT_ATLAS_READ_PASSWORD"),
        )

    @classmethod
    def from_env_values(
        cls, values: dict[str, str], artifact_dir: str | Path | None = None
    ) -> ConnectionSettings:
        """Settings from ``NEO4J_*`` values (``NEO4J_URI`` required)."""
        return cls(
            uri=values["NEO4J_URI"],
            user=values.get("NEO4J_USER"),
            password=values.get("NEO4J_PASSWORD"),
            database=values.get("NEO4J_DATABASE"),
            artifact_dir=Path(artifact_dir) if artifact_dir else None,
        )

    @classmethod
    def from_env_file(
        cls, path: str | Path, artifact_dir: str | Path | None = None
    ) -> ConnectionSettings:
        """Settings from a ``KEY=VALUE`` file such as the ``connection.env`` that
        ``.ci/neo4j/ctl start DIR`` writes."""
        return cls.from_env_values(env_file_values(Path(path)), artifact_dir)

    @property
    def uses_local_server(self) -> bool:
        return self.uri is None

    @property
    def database_name(self) -> str:
        return self.database or DEFAULT_DATABASE

    @property
    def artifacts(self) -> Path:
        return self.artifact_dir or (self.data_dir or default_data_dir()) / "artifacts"


def env_file_values(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines of a file (blank lines and ``#`` comments skipped)."""
    values = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    return values
