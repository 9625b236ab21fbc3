"""The runaway-query guard reads Neo4j 5's subquery scope clause, ``CALL (x) { … }``, as a
subquery, not as a quantified path pattern (the library uses it instead of the deprecated
``CALL { WITH x … }``)."""

from __future__ import annotations

import re

from circuit_atlas.queries.cost_limits import path_length_problem
from circuit_atlas.queries.library import Parameter, library

BOUND = Parameter("max_length", "int", "", False, 3, 1, 6, structural=True)


def test_a_scope_clause_is_not_a_quantifier():
    body = "MATCH (a:Node) CALL (a) { RETURN a.x AS x } RETURN x LIMIT $k"
    assert path_length_problem(body, []) is None


def test_quantifiers_inside_a_scoped_subquery_are_still_checked():
    bounded = "MATCH (a) CALL (a) { MATCH p = (a)((x)-[:EDGE]->(y)){1,{{max_length}}}(b) RETURN p }"
    assert path_length_problem(bounded, [BOUND]) is None
    unbounded = "MATCH (a) CALL (a) { MATCH p = (a)((x)-[:EDGE]->(y))+(b) RETURN p }"
    assert "no upper bound" in (path_length_problem(unbounded, []) or "")


def test_the_library_uses_the_scope_clause_only():
    for name, query in library().items():
        assert not re.search(r"\bCALL\s*\{", query.body), name
