"""Three-node motif census of attribution graphs, its null models, enrichment and report."""
