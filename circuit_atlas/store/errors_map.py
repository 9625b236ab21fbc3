"""Translate driver exceptions into one-line ``CircuitAtlasError`` messages.

The driver's messages are long and multi-line; users need to know *which* server failed and
*what* to do. Passwords never appear: only the URI and user are named.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from neo4j import exceptions as neo

from circuit_atlas.errors import ConnectionFailed, CypherError, QueryTimeout, StoreError


def first_line(message: object) -> str:
    text = str(message or "").strip()
    for marker in ("{message: ", "message: "):
        if marker in text:
            text = text.split(marker, 1)[1].rstrip("}")
            break
    return text.splitlines()[0] if text else "(no message)"


@contextlib.contextmanager
def translated(uri: str, user: str | None) -> Iterator[None]:
    """Re-raise driver errors as store errors naming the server (never the password)."""
    try:
        yield
    except neo.AuthError:
        raise ConnectionFailed(
            f"the graph database at {uri} refused the credentials for user {user!r}"
        ) from None
    except (neo.ServiceUnavailable, neo.SessionExpired, OSError) as exc:
        raise ConnectionFailed(
            f"cannot reach the graph database at {uri} ({first_line(exc)}); is it running?"
        ) from None
    except neo.CypherSyntaxError as exc:
        raise CypherError(f"Cypher syntax error: {first_line(exc.message)}") from None
    except neo.ClientError as exc:
        code = exc.code or ""
        if "AccessMode" in code or "Forbidden" in code:
            raise CypherError(
                f"write refused in read-only mode: {first_line(exc.message)}"
            ) from None
        if "TransactionTimedOut" in code:  # Neo4j enforces the transaction timeout itself
            raise QueryTimeout(
                f"the server stopped the query at its time limit ({first_line(exc.message)}); "
                "raise the limit with --timeout SECONDS (timeout_s= in Python)"
            ) from None
        if "ParameterMissing" in code:
            raise CypherError(f"missing query parameter: {first_line(exc.message)}") from None
        raise CypherError(f"query failed: {first_line(exc.message)}") from None
    except neo.Neo4jError as exc:
        raise StoreError(f"graph database error: {first_line(exc.message)}") from None
    except neo.DriverError as exc:
        raise StoreError(f"graph database driver error: {first_line(exc)}") from None
