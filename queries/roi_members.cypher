// Each ROI of a run with its members, and the prompts (graphs) each member occurs in.
//
// Works for both kinds of run: ROIs of one graph (members are its nodes) and cross-prompt ROIs
// (members are :Feature identities; prompts are every graph with an instance). Runs come from
// `circuit-atlas roi`; list them with `MATCH (r:ROI) RETURN DISTINCT r.run_id, r.method`.
// Graphs derived from stored ones (consensus circuits, pruned graphs, ROI quotients: a :Graph
// with a DERIVED_FROM link) count among a member's graphs only when the run was computed on
// them, or with include_derived.
//
// @param run_id: string — the ROI run (printed by `circuit-atlas roi`)
// @param include_derived: bool = false — also include derived graphs (consensus, pruned, ROI quotients)
// @param limit: int = 10000 (1..1000000) — row limit
// @columns roi, size, member, layer, label, graphs, prompts
MATCH (r:ROI {run_id: $run_id})
WHERE NOT EXISTS { (r)-[:ROI_OF]->(g:Graph) WHERE coalesce(g.status, '') <> 'ready' }
MATCH (r)<-[:IN_ROI]-(m)
OPTIONAL MATCH (m)<-[:INSTANCE_OF]-(instance:Node)-[:IN_GRAPH]->(fg:Graph)
WHERE fg.status = 'ready'
  AND (fg.graph_id IN r.graph_ids OR $include_derived
       OR NOT EXISTS { (fg)-[:DERIVED_FROM]->(:Graph) })
OPTIONAL MATCH (m)-[:IN_GRAPH]->(ng:Graph)
WITH r, m, collect(DISTINCT coalesce(fg, ng)) AS found
WITH r, m, [g IN found WHERE g IS NOT NULL] AS graphs
RETURN r.index AS roi, r.size AS size,
       coalesce(m.node_key, toString(m.layer) + '|' + toString(m.feature)) AS member,
       m.layer AS layer, m.label AS label, size(graphs) AS graphs,
       [g IN graphs | g.prompt] AS prompts
ORDER BY roi, layer, member
LIMIT $limit
