"""Refuse Cypher that is meant to be read-only but could write, before it reaches the server.

This guard is for the message, not the protection: the protection is the server itself, which
runs read-only Cypher as a principal that may only read (``docs/security.md``). The guard names
the clause or procedure, which the server's refusal often does not, and it refuses by
construction rather than by list of bad things:

* write clauses (``CREATE``, ``MERGE``, ``SET``, …) anywhere outside strings, comments and names;
* every ``CALL`` of a procedure that is not on a short allow-list of schema readers, after the
  name is normalised (backticks, whitespace and comments around the dots removed, case folded),
  so ``CALL `do`.`when`(…)`` and ``CALL Do . When(…)`` are the same name; a ``CALL`` whose name
  cannot be read at all is refused too. ``CALL {…}`` and ``CALL (x) {…}`` subqueries are
  clauses, not procedures, and their bodies are checked like the rest;
* transaction and server control (``BEGIN``, ``COMMIT``, ``ROLLBACK``, ``TERMINATE``, ``START``/
  ``STOP DATABASE`` …) at the start of any statement, and more than one statement.
"""

from __future__ import annotations

import re

from circuit_atlas.errors import CypherError

_WRITE_CLAUSES = frozenset(
    {
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
        "COMMIT",
        "ROLLBACK",
        "TERMINATE",
    }
)
# Statements that control transactions or the server; refused at the start of a statement
# (a variable may be called ``start``, so these are not refused everywhere).
_CONTROL_STATEMENTS = frozenset(
    {
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "TERMINATE",
        "START",
        "STOP",
        "ENABLE",
        "DISABLE",
        "DEALLOCATE",
        "REALLOCATE",
        "SUSPEND",
        "RESUME",
        "ALTER",
        "USE",
    }
)
_READ_PROCEDURES = frozenset(
    {
        "db.labels",
        "db.relationshiptypes",
        "db.propertykeys",
        "db.schema.visualization",
        "db.schema.nodetypeproperties",
        "db.schema.reltypeproperties",
        "dbms.components",
        "db.index.fulltext.querynodes",  # Neo4j's full-text search (search_labels)
    }
)
_COMMENT = r"//[^\n]*|/\*.*?\*/"
_STRING = r"'(?:\\.|[^'\\])*'" r'|"(?:\\.|[^"\\])*"'
_QUOTED_NAME = r"`(?:[^`]|``)*`"
_NOISE = re.compile(
    rf"{_COMMENT}|{_STRING}|{_QUOTED_NAME}"
    r"|\$\w+"  # parameter
    r"|\.\s*\w+",  # property access
    re.DOTALL,
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
# A possibly qualified name: parts plain or backticked, dots with optional space between.
_NAME_PART = rf"(?:{_QUOTED_NAME}|[A-Za-z_][A-Za-z_0-9]*)"
_QUALIFIED = re.compile(rf"{_NAME_PART}(?:\s*\.\s*{_NAME_PART})*")
_CALL = re.compile(r"\bCALL\b", re.IGNORECASE)


def strip_noise(cypher: str) -> str:
    return _NOISE.sub(" ", cypher)


def _without_comments_and_strings(cypher: str) -> str:
    """Comments and string literals blanked out (same length), backticked names kept."""
    pattern = re.compile(rf"{_COMMENT}|{_STRING}|({_QUOTED_NAME})", re.DOTALL)
    return pattern.sub(lambda m: m.group(1) or " " * len(m.group(0)), cypher)


def normalise_procedure_name(text: str) -> str:
    """``` `do` . `When` ``` → ``do.when``: backticks, spaces and case do not change a name."""
    parts = re.findall(_NAME_PART, text)
    return ".".join(
        part[1:-1].replace("``", "`") if part.startswith("`") else part for part in parts
    ).lower()


def called_procedures(cypher: str) -> list[str | None]:
    """The normalised name of every procedure ``CALL``ed (``None``: a name that cannot be read);
    ``CALL {`` and ``CALL (`` subqueries are not procedure calls."""
    text = _without_comments_and_strings(cypher)
    names: list[str | None] = []
    for match in _CALL.finditer(text):
        if match.start() > 0 and text[match.start() - 1] == "`":
            continue  # inside a quoted name
        rest = text[match.end() :].lstrip()
        if rest.startswith(("{", "(")):
            continue
        name = _QUALIFIED.match(rest)
        names.append(normalise_procedure_name(name.group(0)) if name else None)
    return names


def _statements(cleaned: str) -> list[str]:
    return [part for part in cleaned.split(";") if part.strip()]


def assert_read_only(cypher: str) -> None:
    """Raise ``CypherError`` naming the first write clause, procedure or control statement."""
    cleaned = strip_noise(cypher)
    statements = _statements(cleaned)
    if len(statements) > 1:
        raise CypherError("one statement at a time: the query holds several (separated by ';')")
    for statement in statements:
        words = _WORD.findall(statement)
        if words and words[0].upper() in _CONTROL_STATEMENTS:
            raise CypherError(
                f"{words[0].upper()} controls transactions or the server; queries are "
                "read-only unless you pass --write"
            )
    for word in _WORD.findall(cleaned):
        if word.upper() in _WRITE_CLAUSES:
            raise CypherError(
                f"{word.upper()} is a write clause; queries are read-only unless you pass --write"
            )
    for name in called_procedures(cypher):
        if name is None:
            raise CypherError("CALL of a procedure whose name cannot be read; refused")
        if name not in _READ_PROCEDURES:
            raise CypherError(f"procedure {name} may write; it runs only with --write")
