"""Make ``docs/viewer.png``: the attribution-graph page on the bundled dollar graph.

The picture in the docs should be the page as it is, not a mock-up, so this script builds the
page with :func:`circuit_atlas.viewer.page.render_view_page`, opens it from ``file://`` in headless
Chromium (Debian's ``chromium``, driven by Playwright; no ``playwright install`` needed) and
saves a screenshot with three nodes pinned and the hover card of one of them showing. Rerun it
after changing the viewer: ``python docs/make_viewer_screenshot.py [OUT.png]``.
"""

from __future__ import annotations

import io
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image
from playwright.sync_api import sync_playwright

from circuit_atlas.ingest.importers import load_graph
from circuit_atlas.viewer.page import render_view_page

if TYPE_CHECKING:
    from playwright.sync_api import ViewportSize

OUT = Path(__file__).resolve().parent / "viewer.png"
# An early "currencies" feature on " peso", a late "currency exchange" feature on the last
# token, and the top logit "dollar": one path through the circuit.
PINNED = ("feature:2:3:11100:", "feature:18:6:10102:", "logit:27:6:64091:")
HOVERED = "feature:18:6:10102:"
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}


def main(out: Path = OUT) -> None:
    graph = load_graph(Path(str(resources.files("circuit_atlas") / "data" / "dollar.json.gz")))
    page_html = render_view_page(graph, pinned=PINNED)
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dollar.html"
        path.write_text(page_html, encoding="utf-8")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
            page = browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
            page.goto(path.as_uri())
            page.click("#copy-pinned")
            page.evaluate("document.activeElement.blur(); window.getSelection().removeAllRanges()")
            page.hover(f'.node[data-node-key="{HOVERED}"]')
            shot = page.screenshot()
            browser.close()
    save_small(shot, out)
    print(f"wrote {out}")


def save_small(png: bytes, out: Path) -> None:
    """Save as a 256-colour PNG (a quarter of the size; the page has few colours). Octree keeps
    the rare colours (logit and embedding nodes) that median cut would merge away."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
        out, optimize=True
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
