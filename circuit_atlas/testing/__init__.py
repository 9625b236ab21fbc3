"""Tools for tests and benchmarks: synthetic graphs of chosen size and shape (not used by the
product itself)."""
