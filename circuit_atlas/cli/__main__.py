"""``python -m circuit_atlas.cli``: what ``db start`` runs in the background."""

from circuit_atlas.cli.main import main

main()
