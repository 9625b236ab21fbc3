// Stored pinned-subgraph scores next to their graphs' scores, to compare circuits across prompts.
//
// Rows come from `circuit-atlas score GRAPH --pinned … / --pin-top N`. Subgraphs of graphs
// derived from stored ones (consensus circuits, pruned graphs, ROI quotients: a :Graph with a
// DERIVED_FROM link) are left out unless include_derived.
//
// @param name: string = null — only subgraphs of this name (e.g. 'top 22')
// @param include_derived: bool = false — also include derived graphs (consensus, pruned, ROI quotients)
// @param limit: int = 10000 (1..1000000) — row limit
// @columns graph_id, name, pinned, replacement, completeness, graph_replacement, graph_completeness
MATCH (s:Subgraph)-[:SUBGRAPH_OF]->(g:Graph)
WHERE ($name IS NULL OR s.name = $name) AND g.status = 'ready'
  AND ($include_derived OR NOT EXISTS { (g)-[:DERIVED_FROM]->(:Graph) })
RETURN g.graph_id AS graph_id, s.name AS name, s.n_pinned AS pinned,
       s.replacement_score AS replacement, s.completeness_score AS completeness,
       g.replacement_score AS graph_replacement, g.completeness_score AS graph_completeness
ORDER BY graph_id, name
LIMIT $limit
