// Strongest paths at ROI granularity: through an ROI quotient graph, from input tokens to a logit.
//
// The quotient graph of a single-graph ROI run keeps tokens and logits and has one node per ROI
// ('roi:::INDEX:'); this ranks token → ROI → … → logit paths by the product of |summed weights|,
// ties by node keys.
//
// @param run_id: string — the ROI run; its quotient graph is '<run_id>-quotient'
// @param target_key: string — node key of the logit in the quotient graph
// @param k: int = 10 (1..10000) — number of paths
// @bound max_length: int = 4 (1..6) — longest path, in edges
// @columns nodes, labels, weights, product
MATCH (target:Node {graph_id: $run_id + '-quotient', node_key: $target_key})
MATCH path = (source:Node {graph_id: $run_id + '-quotient', kind: 'embedding'})
             -[:EDGE*1..{{max_length}}]->(target)
WITH [n IN nodes(path) | n.node_key] AS nodes, [n IN nodes(path) | n.label] AS labels,
     [r IN relationships(path) | r.weight] AS weights
RETURN nodes, labels, weights, reduce(p = 1.0, w IN weights | p * abs(w)) AS product
ORDER BY product DESC, nodes
LIMIT $k
