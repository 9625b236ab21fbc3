"""The attribution-graph page as a document, without a browser.

What must hold whatever the browser does: the page is one self-contained file (nothing fetched
from anywhere), the graph inside it parses back to the graph, a hostile label cannot end the data
element or inject markup, and ``max_edges`` keeps the strongest edges and says so.
The page's behaviour in a real browser is tested in ``test_viewer_browser.py``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import numpy as np
import pytest

from circuit_atlas.errors import InvalidGraphError
from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest.importers import load_graph
from circuit_atlas.viewer.page import (
    default_edge_threshold,
    page_data,
    render_view_page,
    script_json,
)

from helpers.data import bundled
from helpers.graphs import build, err, feat, logit, nine_node_graph, tok

HOSTILE = "</script><script>alert(1)</script><!-- <b>&amp;"
DATA_RE = re.compile(r'<script type="application/json" id="graph-data">(.*?)</script>', re.DOTALL)


@pytest.fixture(scope="module")
def dollar() -> CircuitGraph:
    return load_graph(bundled("dollar.json.gz"))


def embedded_data(page: str) -> dict[str, Any]:
    found = DATA_RE.findall(page)
    assert len(found) == 1
    return json.loads(found[0])


def hostile_graph() -> CircuitGraph:
    graph = build(
        "hostile",
        {"T0": tok(0), "F": feat(0, 0, 1), "E": err(0, 0), "L": logit(0, 5, 0.5)},
        [("T0", "F", 1.0), ("F", "L", -2.0), ("E", "L", 0.5)],
    )
    graph.nodes.loc[1, "label"] = HOSTILE
    graph.metadata.prompt = HOSTILE
    graph.metadata.tokens = [HOSTILE]
    return graph


def test_page_is_one_self_contained_document(dollar: CircuitGraph) -> None:
    page = render_view_page(dollar)
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<html") == 1 and page.rstrip().endswith("</html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert not re.search(r"<(script|link|img|iframe)[^>]*\s(src|href)=(?![\"']data:)", page)
    assert re.search(r"@import|url\(", page) is None
    # the CSP allows exactly the inlined script, by hash
    script = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    assert len(script) == 1
    digest = base64.b64encode(hashlib.sha256(script[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in page
    assert "default-src 'none'" in page
    for element_id in ("hover-card", "node-threshold", "edge-threshold", "pinned-command"):
        assert f'id="{element_id}"' in page


def test_data_parses_back_to_the_graph(dollar: CircuitGraph) -> None:
    data = embedded_data(render_view_page(dollar, max_edges=dollar.n_edges))
    keys = dollar.keys()
    assert [node["key"] for node in data["nodes"]] == [key.encode() for key in keys]
    assert [node["id"] for node in data["nodes"]] == [key.display_id() for key in keys]
    assert [node["label"] for node in data["nodes"]] == dollar.nodes["label"].tolist()
    first = data["nodes"][0]
    assert first["activation"] == pytest.approx(dollar.nodes.at[0, "activation"])
    assert first["influence"] == pytest.approx(dollar.nodes.at[0, "influence"])
    logit_row = int(np.flatnonzero(dollar.nodes["kind"] == "logit")[0])
    assert data["nodes"][logit_row]["influence"] is None  # NaN → null, the JSON stays strict
    assert data["graph"] == {
        "id": dollar.graph_id,
        "model": dollar.metadata.model,
        "prompt": dollar.metadata.prompt,
        "tokens": dollar.metadata.tokens,
    }
    assert len(data["edges"]) == dollar.n_edges == data["edgesInGraph"]
    stored = {
        (s, t): w
        for s, t, w in dollar.edges[["source", "target", "weight"]].itertuples(index=False)
    }
    assert all(w == pytest.approx(stored[(s, t)], rel=1e-5) for s, t, w in data["edges"])


def test_hostile_label_cannot_break_out() -> None:
    graph = hostile_graph()
    page = render_view_page(graph, title=HOSTILE, groups={HOSTILE: ["feature:0:0:1:"]})
    assert HOSTILE not in page
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "<!--" not in page and "<b>" not in page
    assert f"<title>{'&lt;/script&gt;'}" in page
    data = embedded_data(page)
    assert data["nodes"][1]["label"] == HOSTILE
    assert data["graph"]["prompt"] == HOSTILE and data["graph"]["tokens"] == [HOSTILE]
    assert data["title"] == HOSTILE and data["groups"][0]["label"] == HOSTILE
    assert json.loads(script_json({"x": "</script>&<!--\u2028"})) == {"x": "</script>&<!--\u2028"}


def test_max_edges_keeps_the_strongest_and_says_so(dollar: CircuitGraph) -> None:
    data = page_data(dollar, max_edges=100)
    weights = np.abs(dollar.edges["weight"].to_numpy())
    kept = np.abs([w for _, _, w in data["edges"]])
    assert len(kept) == 100 and data["edgesInGraph"] == dollar.n_edges
    assert np.all(np.diff(kept) >= 0)  # weakest first: the slider hides a prefix
    assert kept.min() == pytest.approx(np.sort(weights)[-100], rel=1e-5)
    assert page_data(dollar, max_edges=0)["edges"] == []
    assert len(page_data(nine_node_graph())["edges"]) == nine_node_graph().n_edges
    with pytest.raises(ValueError, match="max_edges"):
        render_view_page(dollar, max_edges=-1)


def test_default_edge_threshold_shows_a_few_hundred_edges() -> None:
    assert default_edge_threshold(10) == 0.0
    for n in (401, 1000, 20_000, 123_457):
        shown = n - int(default_edge_threshold(n) / 100 * n)
        assert 400 <= shown <= 400 + n / 1000 + 1


def test_hide_order_ranks_by_influence_then_by_edge_strength(dollar: CircuitGraph) -> None:
    order = page_data(dollar)["hideOrder"]
    kinds = dollar.nodes["kind"].to_numpy()[order]
    assert set(kinds) == {"feature", "error"}  # embeddings and logits always stay
    influence = dollar.nodes["influence"].to_numpy()[order]
    assert np.all(np.diff(influence) <= 0)  # largest cumulative share (least influential) first
    graph = nine_node_graph()  # no influence column: total |weight| of each node's edges
    data = page_data(graph)
    assert data["importance"] == "strength"
    labels = graph.nodes["label"].to_numpy()
    assert [labels[row] for row in data["hideOrder"]] == ["F0", "E", "F1", "F2"]


def test_pinned_keys_are_checked_and_deduplicated(dollar: CircuitGraph) -> None:
    key = dollar.keys()[5].encode()
    assert page_data(dollar, pinned=[key, key])["pinned"] == [key]
    with pytest.raises(InvalidGraphError, match="no node"):
        page_data(dollar, pinned=["feature:99:0:1:"])
    with pytest.raises(InvalidGraphError, match="malformed"):
        page_data(dollar, pinned=["feature:x:0:1:"])
    with pytest.raises(TypeError):
        page_data(dollar, pinned=key)


def test_groups_become_rows_and_missing_members_are_counted(dollar: CircuitGraph) -> None:
    keys = [key.encode() for key in dollar.keys()]
    groups = {"a": [keys[3], keys[1], keys[3]], "b": [keys[7], "feature:99:0:1:"]}
    data = page_data(dollar, groups=groups, group_kind="roi")
    assert data["groups"] == [{"label": "a", "members": [3, 1]}, {"label": "b", "members": [7]}]
    assert data["groupMembersMissing"] == 1
    assert data["groupKind"] == "roi" and data["groupTitle"] == "ROIs"
    with pytest.raises(InvalidGraphError, match="malformed"):
        page_data(dollar, groups={"c": ["nonsense"]})
