"""The runaway-query guard of the named library, checked when a ``.cypher`` file is loaded.

A library query may be run by anyone on any graph, so its cost must be bounded by its header,
not by the caller's care: every variable-length pattern (``-[:EDGE*1..{{n}}]->``) and every
quantified path pattern (``(()-[:EDGE]->()){1,{{n}}}``) has an upper bound (a literal, or a
``{{bound}}`` whose range is declared), and the result ends in ``LIMIT $param`` where ``param``
is a declared int with a range. The runner adds the third bound, a timeout. Each check returns a
problem (a sentence naming what is missing) or ``None``; ``library.parse_query`` raises it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from circuit_atlas.queries.library import Parameter

_LINE_COMMENT = re.compile(r"//[^\n]*")
_FINAL_LIMIT = re.compile(r"\bLIMIT\s+\$(\w+)\s*;?\s*\Z", re.IGNORECASE)
_BOUND = r"(?:\d+|\{\{\w+\}\})"
# The relationship part of a pattern that has a '*': -[...*...]- (arithmetic has no '-[').
_VARIABLE_LENGTH = re.compile(r"-\[([^\]]*?)\*([^\]]*)\]")
_BOUNDED_HOPS = re.compile(rf"\s*(?:\d+\s*|\d*\s*\.\.\s*{_BOUND}\s*)(?:\{{[^}}]*\}})?\s*\Z")
# A quantified path pattern's quantifier: ((a)-[r]->(b)){m,n}, and the unbounded + and *.
_QUANTIFIER = re.compile(r"\)\s*\{((?:[^{}]|\{\{\w+\}\})*)\}")
_BOUNDED_QUANTIFIER = re.compile(rf"\s*(?:{_BOUND}|\d*\s*,\s*{_BOUND})\s*\Z")
_UNBOUNDED_QUANTIFIER = re.compile(r"\)\)\s*[+*]")
# A subquery's scope clause, CALL (a, b) { … }: its ") {" opens a subquery, not a quantifier.
_CALL_SCOPE = re.compile(r"\bCALL\s*\(([^()]*)\)\s*\{", re.IGNORECASE)


def limit_problem(body: str, parameters: Sequence[Parameter]) -> str | None:
    """Problem with the final ``LIMIT $param``: absent, undeclared, not an int, or unranged."""
    match = _FINAL_LIMIT.search(_LINE_COMMENT.sub("", body))
    if match is None:
        return "must end in `LIMIT $<param>` (a declared int @param with a range)"
    name = match.group(1)
    parameter = next((p for p in parameters if p.name == name and not p.structural), None)
    if parameter is None:
        return f"ends in LIMIT ${name}, but {name!r} is not a declared @param"
    if parameter.type != "int" or parameter.high is None:
        return f"its LIMIT ${name} must be an int @param with a range, e.g. (1..10000)"
    return None


def path_length_problem(body: str, parameters: Sequence[Parameter]) -> str | None:
    """Problem with a variable-length or quantified pattern: no upper bound, or a bound without
    a declared range."""
    text = _CALL_SCOPE.sub("CALL {", _LINE_COMMENT.sub("", body))
    bounds = []
    for match in _VARIABLE_LENGTH.finditer(text):
        hops = match.group(2)
        if not _BOUNDED_HOPS.match(hops):
            return f"variable-length pattern -[{match.group(1)}*{hops}]- has no upper bound"
        bounds.append(hops)
    for match in _QUANTIFIER.finditer(text):
        if not _BOUNDED_QUANTIFIER.match(match.group(1)):
            return f"quantified path pattern {{{match.group(1)}}} has no upper bound"
        bounds.append(match.group(1))
    unbounded = _UNBOUNDED_QUANTIFIER.search(text)
    if unbounded:
        return f"quantified path pattern {unbounded.group(0)!r} has no upper bound"
    for hops in bounds:
        for name in re.findall(r"\{\{(\w+)\}\}", hops):
            bound = next((p for p in parameters if p.name == name and p.structural), None)
            if bound is None or bound.high is None:
                return f"path bound {{{{{name}}}}} must be a declared @bound with a range"
    return None
