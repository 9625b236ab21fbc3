"""Files other tools read, written from a ``CircuitGraph`` (the importers' counterparts)."""
