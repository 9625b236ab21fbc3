"""``compare --stats`` says how far its slow part (one bootstrap test per pair) has got."""

from __future__ import annotations

import pytest

from circuit_atlas.analysis.compare.omnibus import latent_distribution_pvalues

from helpers.graphs import random_attribution_graph


def test_the_latent_distribution_tests_draw_a_bar_over_pairs(capsys: pytest.CaptureFixture[str]):
    graphs = [random_attribution_graph(seed, n_layers=3, n_pos=4) for seed in range(3)]
    quiet = latent_distribution_pvalues(graphs, "node", n_bootstraps=5)
    assert "latent distribution tests" not in capsys.readouterr().err
    shown = latent_distribution_pvalues(graphs, "node", n_bootstraps=5, progress=True)
    err = capsys.readouterr().err
    assert "latent distribution tests" in err and "3/3" in err
    assert shown.equals(quiet)  # the bar changes nothing computed
