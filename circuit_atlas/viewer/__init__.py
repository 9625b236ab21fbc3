"""One self-contained HTML page per attribution graph, to look at a circuit in any browser.

Researchers read attribution graphs the way Neuronpedia draws them (tokens along the bottom,
layers upwards, edges coloured by sign) and pick nodes by clicking them; the picks then go back to
``circuit-atlas score --pinned``. The page is a single file with its script, style and data
inlined, so it opens from ``file://``, can be mailed or attached to a report, and makes no network
request (a Content-Security-Policy forbids any). Build it with
:func:`circuit_atlas.viewer.page.render_view_page`.
"""
