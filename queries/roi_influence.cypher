// ROIs of a run ranked by their members' influence on the logits: the ROI-level nodes_by_influence.
//
// Influence is what `circuit-atlas score GRAPH` stores on each node (circuit-tracer's
// I = Σ wᵀÂᵏ). A member of a one-graph run is a node; a member of a cross-prompt run is a
// :Feature, whose influence is summed over its instances in the run's graphs and divided by the
// number of graphs (the mean per prompt). `share` is the ROI's part of the total influence of all
// ROIs of the run; `scored` counts the members that had a score (unscored graphs give 0 and
// null influence). Ties by ROI index.
//
// @param run_id: string — the ROI run (printed by `circuit-atlas roi`)
// @param k: int = 50 (1..100000) — number of ROIs
// @columns roi, size, min_layer, max_layer, influence, share, scored, top_member, top_label
MATCH (r:ROI {run_id: $run_id})
WHERE NOT EXISTS { (r)-[:ROI_OF]->(g:Graph) WHERE coalesce(g.status, '') <> 'ready' }
MATCH (r)<-[:IN_ROI]-(m)
OPTIONAL MATCH (m)<-[:INSTANCE_OF]-(instance:Node)
WHERE instance.graph_id IN r.graph_ids
WITH r, m, CASE WHEN m:Node THEN [m] ELSE collect(instance) END AS instances
WITH r, m, [n IN instances WHERE n.score_influence IS NOT NULL] AS scored
WITH r, m, size(scored) > 0 AS has_score,
     reduce(s = 0.0, n IN scored | s + n.score_influence) / size(r.graph_ids) AS influence,
     coalesce(m.node_key, toString(m.layer) + '|' + toString(m.feature)) AS member,
     coalesce(m.label, head([n IN scored | n.label])) AS label
ORDER BY influence DESC, member
WITH r, sum(influence) AS influence, sum(CASE WHEN has_score THEN 1 ELSE 0 END) AS scored,
     head(collect(member)) AS top_member, head(collect(label)) AS top_label
WITH collect({r: r, influence: influence, scored: scored, top_member: top_member,
              top_label: top_label}) AS rois
WITH rois, reduce(s = 0.0, x IN rois | s + x.influence) AS total
UNWIND rois AS x
RETURN x.r.index AS roi, x.r.size AS size, x.r.min_layer AS min_layer,
       x.r.max_layer AS max_layer,
       CASE WHEN x.scored = 0 THEN null ELSE x.influence END AS influence,
       CASE WHEN x.scored = 0 OR total = 0.0 THEN null ELSE x.influence / total END AS share,
       x.scored AS scored, x.top_member AS top_member, x.top_label AS top_label
ORDER BY coalesce(influence, -1.0) DESC, roi
LIMIT $k
