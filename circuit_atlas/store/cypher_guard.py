"""Refuse write clauses in Cypher that is meant to be read-only, before it reaches the server.

This is the first of three layers (the others: a READ-mode session, and a transaction that is
always rolled back), chosen because it gives the clearest message: it names the clause.
Comments, string literals, backtick-quoted names, ``$parameters`` and ``.property`` names are
removed first so that e.g. ``n.set`` or ``'CREATE'`` are not mistaken for clauses.
"""

from __future__ import annotations

import re

from circuit_atlas.errors import CypherError

_WRITE_CLAUSES = (
    "CREATE",
    "MERGE",
    "DELETE",
    "DETACH",
    "SET",
    "REMOVE",
    "DROP",
    "FOREACH",
    "LOAD",
    "ALTER",
    "GRANT",
    "REVOKE",
    "DENY",
    "RENAME",
    "TRANSACTIONS",
    "FINISH",
)
_READ_PROCEDURES = {
    "db.labels",
    "db.relationshiptypes",
    "db.propertykeys",
    "db.indexes",
    "db.constraints",
    "db.schema.visualization",
    "db.schema.nodetypeproperties",
    "db.schema.reltypeproperties",
    "dbms.components",
}
_NOISE = re.compile(
    r"//[^\n]*"  # line comment
    r"|/\*.*?\*/"  # block comment
    r"|'(?:\\.|[^'\\])*'"  # single-quoted string
    r'|"(?:\\.|[^"\\])*"'  # double-quoted string
    r"|`[^`]*`"  # quoted identifier
    r"|\$\w+"  # parameter
    r"|\.\s*\w+",  # property access
    re.DOTALL,
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_PROCEDURE = re.compile(r"\bCALL\s+([A-Za-z_][\w.]*)", re.IGNORECASE)


def strip_noise(cypher: str) -> str:
    return _NOISE.sub(" ", cypher)


def assert_read_only(cypher: str) -> None:
    """Raise ``CypherError`` naming the first write clause or unknown procedure found."""
    cleaned = strip_noise(cypher)
    for word in _WORD.findall(cleaned):
        if word.upper() in _WRITE_CLAUSES:
            raise CypherError(
                f"{word.upper()} is a write clause; queries are read-only unless you pass --write"
            )
    # Procedure names contain dots, so look for them in text with only comments/strings removed.
    for match in _PROCEDURE.finditer(
        re.sub(r"//[^\n]*|/\*.*?\*/|'[^']*'|\"[^\"]*\"", " ", cypher, flags=re.DOTALL)
    ):
        name = match.group(1).lower()
        if name not in _READ_PROCEDURES:
            raise CypherError(f"procedure {match.group(1)} may write; it runs only with --write")
