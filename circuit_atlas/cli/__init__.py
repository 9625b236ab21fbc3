"""The ``circuit-atlas`` command line: one module per command group.

Importing this package is cheap on purpose (``tests/cli/test_startup.py``): torch,
transformer-lens, graspologic, matplotlib and scikit-learn are imported inside the commands that
need them, so ``circuit-atlas --help`` or ``graphs`` never wait for a model library.
"""

from circuit_atlas.cli.main import cli, main

__all__ = ["cli", "main"]
