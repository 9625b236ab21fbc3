// Each ROI of a run with its members, and the prompts (graphs) each member occurs in.
//
// Works for both kinds of run: ROIs of one graph (members are its nodes) and cross-prompt ROIs
// (members are :Feature identities; prompts are every graph with an instance). Runs come from
// `circuit-atlas roi`; list them with `MATCH (r:ROI) RETURN DISTINCT r.run_id, r.method`.
// Graphs derived from stored ones (consensus circuits, pruned graphs, ROI quotients: a :Graph
// with a DERIVED_FROM link) count among a member's graphs only when the run was computed on
// them, or with include_derived.
//
// Fast at 20k members on every server: members are put in order by a sort without a LIMIT, and
// cut to $limit from the ordered list, because ArcadeDB's ORDER BY ... LIMIT with a large limit
// costs 5-10x a full sort (0.3-0.5 s for 10k rows). Nothing after the cut reorders rows (a list's
// UNWIND keeps its order and no later clause aggregates), so the rows come out in that order.
// A node member's graph is the one of the run it belongs to; a feature member's graphs are those
// holding an instance of it.
//
// @param run_id: string — the ROI run (printed by `circuit-atlas roi`)
// @param include_derived: bool = false — also include derived graphs (consensus, pruned, ROI quotients)
// @param limit: int = 10000 (1..1000000) — row limit
// @columns roi, size, member, layer, label, graphs, prompts
MATCH (r:ROI {run_id: $run_id})
WHERE NOT EXISTS { (r)-[:ROI_OF]->(g:Graph) WHERE coalesce(g.status, '') <> 'ready' }
OPTIONAL MATCH (r)-[:ROI_OF]->(run_graph:Graph)
WITH r, collect(run_graph) AS run_graphs
MATCH (r)<-[:IN_ROI]-(m)
WITH r, m, run_graphs, coalesce(m.node_key, toString(m.layer) + '|' + toString(m.feature)) AS member
ORDER BY r.index, m.layer, member
WITH collect({r: r, m: m, member: member, run_graphs: run_graphs}) AS ordered
UNWIND ordered[0..$limit] AS row
WITH row.r AS r, row.m AS m, row.member AS member, row.run_graphs AS run_graphs
WITH r, m, member,
     CASE WHEN m:Feature
          THEN [(m)<-[:INSTANCE_OF]-(:Node)-[:IN_GRAPH]->(fg:Graph)
                WHERE fg.status = 'ready'
                  AND (fg.graph_id IN r.graph_ids OR $include_derived
                       OR NOT EXISTS { (fg)-[:DERIVED_FROM]->(:Graph) }) | fg]
          ELSE [g IN run_graphs WHERE g.graph_id = m.graph_id] END AS found
WITH r, m, member,
     reduce(graphs = [], g IN found | CASE WHEN g IN graphs THEN graphs ELSE graphs + [g] END)
         AS graphs
RETURN r.index AS roi, r.size AS size, member, m.layer AS layer, m.label AS label,
       size(graphs) AS graphs, [g IN graphs | g.prompt] AS prompts
LIMIT $limit
