"""Test helpers shared by tests/unit, store, cli and corpus (imported as ``helpers.*``)."""
