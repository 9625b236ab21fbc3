"""The attribution-graph page in a real browser: headless Chromium driven by Playwright.

The page is only useful if a researcher can open it from disk and use it, so these tests load it
from a ``file://`` URL in Debian's ``chromium`` (no ``playwright install``: the browser is the
system one) and do what a reader does: hover, click, copy, move the sliders. Every test also
checks that the page logged no error, threw nothing and requested nothing but its own file (the
Content-Security-Policy would turn a blocked request or a wrong script hash into a console
error). One browser serves the whole module; each test gets a fresh page. Skipped, saying why,
where Playwright or Chromium is missing.
"""

from __future__ import annotations

import importlib.util
import shlex
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from circuit_atlas.graph import CircuitGraph
from circuit_atlas.ingest.importers import load_graph
from circuit_atlas.viewer.page import render_view_page

from helpers.data import bundled
from helpers.graphs import build, err, feat, logit, tok
from helpers.skips import skip_test

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, ViewportSize

HOSTILE = "</script><script>alert(1)</script><!-- <b>x</b>"
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}


def chromium_path() -> str:
    """The system Chromium, or skip the test saying what is missing."""
    if importlib.util.find_spec("playwright") is None:
        skip_test("playwright is not installed (pip install playwright)")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        skip_test("chromium is not installed (apt-get install chromium)")
    return executable


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def dollar() -> CircuitGraph:
    return load_graph(bundled("dollar.json.gz"))


@pytest.fixture(scope="module")
def dollar_file(dollar: CircuitGraph, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("viewer") / "dollar.html"
    path.write_text(render_view_page(dollar), encoding="utf-8")
    return path


@dataclass
class Opened:
    """A page and what it reported while it was open."""

    page: Page
    url: str
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def on_dialog(self, dialog: Dialog) -> None:
        """An ``alert`` would mean injected script ran."""
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def view(self, expression: str) -> Any:
        return self.page.evaluate(f"window.circuitView.{expression}")

    def assert_clean(self) -> None:
        assert self.errors == []
        assert self.dialogs == []
        assert [
            url for url in self.requests if url != self.url and not url.startswith("data:")
        ] == []


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Any]:
    pages: list[Page] = []

    def opener(path: Path) -> Opened:
        page = browser.new_page(viewport=VIEWPORT)
        pages.append(page)
        opened = Opened(page, path.as_uri())
        page.on("console", opened.on_console)
        page.on("pageerror", lambda exc: opened.errors.append(str(exc)))
        page.on("request", lambda request: opened.requests.append(request.url))
        page.on("dialog", opened.on_dialog)
        page.goto(opened.url)
        page.wait_for_function("window.circuitView !== undefined")
        return opened

    yield opener
    for page in pages:
        page.close()


def node(opened: Opened, key: str) -> Any:
    return opened.page.locator(f'.node[data-node-key="{key}"]')


def key_of(graph: CircuitGraph, label: str) -> str:
    rows = graph.nodes.index[graph.nodes["label"] == label]
    return graph.keys()[int(rows[0])].encode()


def test_page_loads_clean_and_draws_every_node(
    open_page: Any, dollar: CircuitGraph, dollar_file: Path
) -> None:
    opened = open_page(dollar_file)
    assert opened.page.locator(".node").count() == dollar.n_nodes
    assert opened.view("visibleNodes()") == dollar.n_nodes
    assert opened.page.locator(".edge").count() == 20_000  # max_edges of 40,249
    shown = opened.view("visibleEdges()")
    assert 400 <= shown <= 420  # the default edge threshold: a few hundred strongest edges
    assert "20,249 were dropped" in opened.page.locator("#notice").inner_text()
    tokens = opened.page.locator("text.token").all_text_contents()
    assert tokens == dollar.metadata.tokens
    assert opened.view("pinned()") == []
    opened.assert_clean()


def test_hover_shows_the_card_and_mouse_out_hides_it(
    open_page: Any, dollar: CircuitGraph, dollar_file: Path
) -> None:
    opened = open_page(dollar_file)
    card = opened.page.locator("#hover-card")
    key = "feature:18:6:10102:"  # "currency exchange", activation 69.617
    node(opened, key).hover()
    assert card.is_visible()
    text = card.inner_text()
    assert "currency exchange" in text and "feature" in text and "69.617" in text
    assert key in text
    opened.page.mouse.move(2, 2)
    assert card.is_hidden()
    opened.assert_clean()


def test_click_pins_and_copies_the_score_command(
    open_page: Any, dollar: CircuitGraph, dollar_file: Path
) -> None:
    opened = open_page(dollar_file)
    first, second = "feature:18:6:10102:", key_of(dollar, "hispanic surnames")
    node(opened, first).click()
    node(opened, second).click()
    assert opened.view("pinned()") == [first, second]
    assert "pinned" in (node(opened, first).get_attribute("class") or "")
    assert opened.page.locator("#pinned-list li").count() == 2
    opened.page.click("#copy-pinned")
    command = opened.page.locator("#pinned-command").input_value()
    expected = ["circuit-atlas", "score", dollar.graph_id, "--pinned", first, "--pinned", second]
    assert shlex.split(command) == expected
    node(opened, first).click()
    assert opened.view("pinned()") == [second]
    assert "pinned" not in (node(opened, first).get_attribute("class") or "")
    assert first not in opened.page.locator("#pinned-command").input_value()
    opened.assert_clean()


def test_initial_pins_and_sliders(open_page: Any, dollar: CircuitGraph, tmp_path: Path) -> None:
    pinned = key_of(dollar, "hydrophobic")  # among the least influential features
    path = tmp_path / "pinned.html"
    path.write_text(render_view_page(dollar, pinned=[pinned]), encoding="utf-8")
    opened = open_page(path)
    assert opened.view("pinned()") == [pinned]
    before = opened.view("visibleNodes()")
    slider = opened.page.locator("#node-threshold")
    slider.focus()
    for _ in range(50):
        opened.page.keyboard.press("ArrowRight")
    assert slider.input_value() == "50"
    after = opened.view("visibleNodes()")
    assert after < before
    assert f"{after} of {dollar.n_nodes} nodes shown" in opened.page.inner_text("#node-count")
    assert node(opened, pinned).is_visible()  # pinned nodes stay
    opened.page.keyboard.press("End")
    always = int((dollar.nodes["kind"].isin(["embedding", "logit"])).sum())
    assert opened.view("visibleNodes()") == always + 1
    edges_before = opened.view("visibleEdges()")
    opened.page.locator("#edge-threshold").focus()
    opened.page.keyboard.press("Home")
    assert opened.view("visibleEdges()") > edges_before
    opened.assert_clean()


def test_groups_colour_nodes_and_fill_the_legend(
    open_page: Any, dollar: CircuitGraph, tmp_path: Path
) -> None:
    keys = [key.encode() for key in dollar.keys()]
    labels = dollar.nodes["label"].fillna("").tolist()
    groups = {
        "currency": [k for k, label in zip(keys, labels) if "urrenc" in label],
        "Mexico": [k for k, label in zip(keys, labels) if "exic" in label or "ispanic" in label],
        HOSTILE: [keys[0]],
    }
    path = tmp_path / "groups.html"
    path.write_text(render_view_page(dollar, groups=groups, group_kind="roi"), encoding="utf-8")
    opened = open_page(path)
    entries = opened.page.locator(".legend-group")
    assert entries.count() == 3
    assert entries.locator(".legend-text").all_inner_texts() == list(groups)
    assert opened.page.locator("#legend b").count() == 0  # the hostile label stayed text
    assert opened.page.locator("#legend h3").inner_text() == "ROIs"
    swatches = entries.locator(".swatch").evaluate_all(
        "els => els.map(el => getComputedStyle(el).backgroundColor)"
    )
    assert len(set(swatches)) == 3
    fills = fills_of(opened)
    for (label, members), colour in zip(groups.items(), swatches):
        assert {fills[key] for key in members} == {colour}, label
    ungrouped = opened.page.locator(".legend-ungrouped .swatch").evaluate(
        "el => getComputedStyle(el).backgroundColor"
    )
    grouped = {k for members in groups.values() for k in members}
    other = next(k for k in keys if k not in grouped)
    assert fills[other] == ungrouped
    node(opened, groups["currency"][0]).hover()
    assert "roi" in opened.page.inner_text("#hover-card")
    opened.assert_clean()


def fills_of(opened: Opened) -> dict[str, str]:
    """Node key → the node's computed fill colour, ``rgb(…)`` like a legend swatch's."""
    return opened.page.locator(".node").evaluate_all(
        "els => Object.fromEntries(els.map(el => "
        "[el.getAttribute('data-node-key'), getComputedStyle(el).fill]))"
    )


def test_hostile_text_stays_text_and_the_command_is_quoted(open_page: Any, tmp_path: Path) -> None:
    graph = build(
        "it's a <graph> $(id)",
        {"T0": tok(0), "F": feat(0, 0, 1), "E": err(0, 0), "L": logit(0, 5, 0.5)},
        [("T0", "F", 1.0), ("F", "L", -2.0), ("E", "L", 0.5)],
    )
    graph.nodes.loc[1, "label"] = HOSTILE
    graph.metadata.prompt = HOSTILE
    graph.metadata.tokens = [HOSTILE]
    path = tmp_path / "hostile.html"
    path.write_text(render_view_page(graph, title=HOSTILE), encoding="utf-8")
    opened = open_page(path)
    assert opened.page.title() == HOSTILE
    assert opened.page.inner_text("#page-title") == HOSTILE
    assert opened.page.locator("b, #graph-pane script, header script").count() == 0
    key = graph.keys()[1].encode()
    node(opened, key).hover()
    assert HOSTILE in opened.page.inner_text("#hover-card")
    node(opened, key).click()
    opened.page.click("#copy-pinned")
    command = opened.page.locator("#pinned-command").input_value()
    assert shlex.split(command) == ["circuit-atlas", "score", graph.graph_id, "--pinned", key]
    opened.assert_clean()


def test_a_component_graph_without_positions(open_page: Any, tmp_path: Path) -> None:
    graph = build(
        "components",
        {
            "input": {"kind": "input"},
            "a0.h0": {"kind": "attention_head", "layer": 0, "head": 0},
            "a0.h1": {"kind": "attention_head", "layer": 0, "head": 1},
            "m0": {"kind": "mlp", "layer": 0},
            "logits": {"kind": "logits"},
        },
        [("input", "a0.h0", 1.0), ("input", "a0.h1", -1.0), ("a0.h0", "m0", 2.0)]
        + [("m0", "logits", 3.0), ("a0.h1", "logits", 0.5)],
    )
    path = tmp_path / "components.html"
    path.write_text(render_view_page(graph), encoding="utf-8")
    opened = open_page(path)
    assert opened.page.locator(".node").count() == 5
    assert opened.view("visibleEdges()") == 5
    boxes = [opened.page.locator(".node").nth(i).bounding_box() for i in range(5)]
    assert all(box is not None and box["width"] > 0 for box in boxes)
    assert len({(round(b["x"]), round(b["y"])) for b in boxes if b is not None}) == 5
    opened.assert_clean()


def test_a_sparse_feature_circuit_gets_a_row_per_site(open_page: Any, tmp_path: Path) -> None:
    """SAE feature circuits: nodes summed over positions, each layer's attention, MLP and
    residual sites on rows of their own in forward order, one legend entry for every error."""
    import pandas as pd

    from circuit_atlas.graph import GraphMetadata

    kinds = [("embed_feature", None, 0), ("attn_error", 0, None), ("attn_feature", 0, 1),
             ("mlp_feature", 0, 2), ("resid_error", 0, None), ("resid_feature", 1, 3),
             ("logits", None, None)]  # fmt: skip
    nodes = pd.DataFrame([{"kind": k, "layer": layer, "feature": f} for k, layer, f in kinds])
    edges = pd.DataFrame({"source": [0, 1, 2, 3, 4, 5], "target": [2, 3, 3, 4, 5, 6],
                          "weight": [1.0, -0.5, 0.7, 0.2, 0.9, 1.1]})  # fmt: skip
    graph = CircuitGraph(nodes, edges, GraphMetadata(graph_id="sfc"))
    path = tmp_path / "sfc.html"
    path.write_text(render_view_page(graph), encoding="utf-8")
    opened = open_page(path)
    page = opened.page
    labels = page.locator(".layer-label").all_text_contents()
    assert labels == ["Emb", "attn 0", "mlp 0", "resid 0", "resid 1", "Logit"]
    entries = page.locator(".kind-entry").all_text_contents()
    assert sum("SAE error term" in e for e in entries) == 1
    boxes = [page.locator(".node").nth(i).bounding_box() for i in range(len(kinds))]
    ys = [box["y"] for box in boxes if box is not None]
    assert ys[0] > ys[2] > ys[3] > ys[5] > ys[6]  # embed, attn, mlp, resid 0, resid 1, logits
    opened.assert_clean()
