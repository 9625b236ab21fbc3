"""Sparse feature circuits (Marks et al., 2024): SAE features and error terms of every site."""
