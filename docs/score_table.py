"""Regenerate ``docs/scores.md``: scores of every real Neuronpedia graph in ``../shared/data``.

    python docs/score_table.py            # writes docs/scores.md

The same numbers are what ``circuit-atlas score GRAPH --pin-top 1 --pin-top 22`` prints after
ingesting the file; ``tests/corpus/test_score_corpus.py`` checks the stored path against this table.
"""

from __future__ import annotations

import sys
from pathlib import Path

from circuit_atlas.analysis.scores.table import ScoreReport, score_graph
from circuit_atlas.ingest import load_graph

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent.parent / "shared" / "data" / "graphs" / "neuronpedia"
PIN_TOP = (1, 22)
HEADER = (
    "| graph | set | nodes | full R | full C | pruned R | pruned C | top-1 R | top-1 C "
    "| top-22 R | top-22 C |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


def report_for(path: Path) -> ScoreReport:
    return score_graph(load_graph(path), pin_top=list(PIN_TOP))[0]


def table_row(path: Path, report: ScoreReport) -> str:
    cells = [path.stem, path.parent.name, str(report.row("full").n_nodes)]
    for scope, name in [
        ("full", None),
        ("pruned", None),
        ("subgraph", "top 1"),
        ("subgraph", "top 22"),
    ]:
        row = report.row(scope, name)
        cells += [f"{row.replacement:.4f}", f"{row.completeness:.4f}"]
    return "| " + " | ".join(cells) + " |"


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*/*.json"))


def main() -> None:
    files = corpus_files()
    if not files:
        sys.exit(f"no graphs under {CORPUS}")
    rows = [table_row(path, report_for(path)) for path in files]
    text = (HERE / "scores_intro.md").read_text() + "\n" + HEADER + "\n" + "\n".join(rows) + "\n"
    (HERE / "scores.md").write_text(text)
    print(f"wrote {HERE / 'scores.md'} ({len(rows)} graphs)")


if __name__ == "__main__":
    main()
