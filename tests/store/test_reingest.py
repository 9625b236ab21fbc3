"""Re-ingest is idempotent on what a graph *is*, not on the name of the file it came from."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from circuit_atlas.ingest import load_graph
from circuit_atlas.store import CircuitStore

from helpers.data import bundled

pytestmark = pytest.mark.backends("arcadedb", "neo4j")


def test_a_renamed_copy_has_the_same_content_hash(tmp_path: Path):
    copy = tmp_path / "renamed-dollar.json.gz"
    shutil.copy(bundled("dollar.json.gz"), copy)
    original, renamed = load_graph(bundled("dollar.json.gz")), load_graph(copy)
    assert original.metadata.extra["source_file"] != renamed.metadata.extra["source_file"]
    assert original.content_hash() == renamed.content_hash()
    assert original.content_hash(with_provenance=True) != renamed.content_hash(with_provenance=True)


def test_ingesting_a_renamed_copy_is_a_no_op(fresh_store: CircuitStore, tmp_path: Path):
    """The demo's bundled dollar.json.gz and ../shared's dollar.json were "different content"."""
    fresh_store.write_graph(load_graph(bundled("dollar.json.gz")))
    shutil.copy(bundled("dollar.json.gz"), tmp_path / "copy-of-dollar.json.gz")
    again = load_graph(tmp_path / "copy-of-dollar.json.gz")
    assert fresh_store.check_writable([again]) == {"gemma-dollar": "unchanged"}
    assert fresh_store.write_graph(again).status == "unchanged"


def test_a_graph_stored_with_the_old_hash_still_counts_as_the_same(fresh_store: CircuitStore):
    """Versions before issue 13 hashed the file name too; their graphs must not conflict."""
    graph = load_graph(bundled("dollar.json.gz"))
    fresh_store.write_graph(graph)
    fresh_store._write(
        "MATCH (g:Graph {graph_id: $gid}) SET g.content_hash = $old",
        {"gid": graph.graph_id, "old": graph.content_hash(with_provenance=True)},
    )
    assert fresh_store.write_graph(graph).status == "unchanged"
