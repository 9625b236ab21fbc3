"""Cross-prompt comparison of circuit graphs: overlap metrics, consensus graphs, statistics."""
