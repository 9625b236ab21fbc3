"""Regions of interest (ROIs): groups of nodes or features that work together, found by
community detection on one graph or on a feature × feature matrix built across prompts."""
