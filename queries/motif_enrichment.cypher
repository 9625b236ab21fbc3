// How consistently each 3-node motif is enriched across stored graphs, per null model.
//
// Rows come from `circuit-atlas motifs` (one :MotifStat per graph, null model and motif; see
// docs/motifs.md). `graphs` counts graphs with a census; `enriched` those with z > 0,
// `above_2` those with z > 2; `mean_z` averages the z-scores that exist (a null model that
// cannot change a motif gives no z). Graphs derived from stored ones (consensus, pruned, ROI
// quotients) are left out unless include_derived, or named in graph_ids.
//
// @param motif: string = null — only this motif (feed_forward_loop, chain, fan_out, fan_in, cycle)
// @param null_model: string = null — only this null model
// @param graph_ids: list<string> = [] — only these graphs; [] means every graph with a census but derived ones
// @param include_derived: bool = false — with graph_ids [], also derived graphs
// @param limit: int = 1000 (1..1000000) — row limit
// @columns motif, null_model, graphs, enriched, above_2, mean_z
MATCH (m:MotifStat)-[:STAT_OF]->(g:Graph)
WHERE g.status = 'ready'
  AND (g.graph_id IN $graph_ids
       OR (size($graph_ids) = 0
           AND ($include_derived OR NOT EXISTS { (g)-[:DERIVED_FROM]->(:Graph) })))
  AND ($motif IS NULL OR m.motif = $motif)
  AND ($null_model IS NULL OR m.null_model = $null_model)
WITH m.motif AS motif, m.null_model AS null_model, count(m) AS graphs, collect(m.z) AS zs
RETURN motif, null_model, graphs,
       size([z IN zs WHERE z > 0]) AS enriched,
       size([z IN zs WHERE z > 2]) AS above_2,
       CASE WHEN size(zs) = 0 THEN null
            ELSE reduce(total = 0.0, z IN zs | total + z) / size(zs) END AS mean_z
ORDER BY motif, null_model
LIMIT $limit
