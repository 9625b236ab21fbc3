"""Time and peak memory of reading a large Neuronpedia file: streamed, against the whole document.

    python benchmarks/ingest_memory.py [--nodes 20000 --edges 1010000] [--repeats 3]
                                       [--file PATH] [--gzip]

Writes a layered Neuronpedia graph (``circuit_atlas.testing.synthetic.layered_neuronpedia``:
tokens, error nodes, features over 26 layers and 12 positions, 10 logits) to a temporary file,
or reads ``--file``, then measures in one run, each in its own fresh process so that every
peak RSS is that reader's own:

* ``json.load`` of the file: the baseline (time, and peak RSS above the interpreter's);
* the whole-document path, ``load_document_graph`` (``read_json`` + ``parse_neuronpedia``:
  what ``load_graph`` did before);
* ``load_graph``, which streams the file (``ingest/neuronpedia_stream.py``): time, peak RSS,
  and tracemalloc's peak (a second, traced read; tracemalloc slows allocation, so the timed
  read is untraced), also split into reading (``stream_parts``) and ``CircuitGraph``'s own
  normalising and validating.

Times are the median of ``--repeats`` reads in the same process, wall and CPU (the machine is
shared: CPU time is the steadier). Printed: each time over ``json.load``'s, and each peak over
the graph's arrays (edge rows and weights, plus the nodes table's deep memory).

Targets (the performance issue): peak memory at most 3x the arrays; the whole ingest of a
1M-link file within 5x ``json.load``, so reading at most 1.5-2x.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

READERS = ("json.load", "whole-document", "streamed")


def rss_now() -> int:
    """Resident bytes of this process now (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def peak_rss() -> int:
    """Peak resident bytes of this process (Linux: VmHWM, the high-water mark of this image;
    ``ru_maxrss`` would carry the parent's over fork and exec)."""
    found = re.search(r"^VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    if found is None:
        raise SystemExit("this benchmark reads /proc/self/status (Linux)")
    return int(found.group(1)) * 1024


def measure(reader: str, path: Path, repeats: int) -> dict[str, Any]:
    """Run one reader (in this, a fresh, process) and return its figures."""
    from circuit_atlas.ingest import load_graph
    from circuit_atlas.ingest.importers import load_document_graph

    baseline = rss_now()
    read = {
        "json.load": lambda: _json_load(path),
        "whole-document": lambda: load_document_graph(path),
        "streamed": lambda: load_graph(path),
    }[reader]
    walls, cpus = [], []
    result = None
    for _ in range(repeats):
        result = None
        started, cpu = time.perf_counter(), time.process_time()
        result = read()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    out: dict[str, Any] = {
        "wall_s": statistics.median(walls),
        "cpu_s": statistics.median(cpus),
        "rss_peak_above_start": peak_rss() - baseline,
    }
    if reader == "streamed":
        out |= traced(path)
    if reader != "json.load":
        from circuit_atlas.graph import CircuitGraph

        assert isinstance(result, CircuitGraph)
        out["arrays"] = graph_arrays(result)
        out["n_edges"] = result.n_edges
    return out


def _json_load(path: Path) -> Any:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        return json.load(handle)


def traced(path: Path) -> dict[str, Any]:
    """tracemalloc peaks of a streamed read: reading alone, then the whole ``load_graph``."""
    import tracemalloc

    from circuit_atlas.ingest import load_graph
    from circuit_atlas.ingest.neuronpedia_stream import stream_parts

    tracemalloc.start()
    parts = stream_parts(path)
    read_peak = tracemalloc.get_traced_memory()[1]
    assert parts is not None, "the file was handed to the whole-document path"
    del parts
    tracemalloc.reset_peak()
    graph = load_graph(path)
    load_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del graph
    return {"traced_read_peak": read_peak, "traced_load_peak": load_peak}


def graph_arrays(graph: Any) -> int:
    """Bytes of what the graph is: edge rows and weights, and the nodes table (deep)."""
    edges = sum(graph.edges[c].to_numpy().nbytes for c in ("source", "target", "weight"))
    return edges + int(graph.nodes.memory_usage(deep=True).sum())


def write_file(path: Path, nodes: int, edges: int) -> None:
    from circuit_atlas.testing.synthetic import layered_neuronpedia

    document = layered_neuronpedia(nodes, edges, slug="ingest-memory")
    text = json.dumps(document)
    del document
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")


def run_child(reader: str, path: Path, repeats: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--measure", reader, "--file", str(path)]
    result = subprocess.run(
        [*command, "--repeats", str(repeats)], check=True, capture_output=True, text=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def report(path: Path, figures: dict[str, dict[str, Any]]) -> None:
    base = figures["json.load"]
    arrays = figures["streamed"]["arrays"]
    mib = 2**20
    print(
        f"\n{path.name}: {path.stat().st_size / mib:,.1f} MiB on disk, "
        f"{figures['streamed']['n_edges']:,} links; graph arrays {arrays / mib:,.1f} MiB"
    )
    header = ("reader", "wall s", "cpu s", "x json", "RSS MiB", "x arrays")
    print("  {:16} {:>8} {:>8} {:>7} {:>9} {:>9}".format(*header))
    for reader in READERS:
        f = figures[reader]
        ratio = f["cpu_s"] / base["cpu_s"]
        rss = f["rss_peak_above_start"]
        print(
            f"  {reader:16} {f['wall_s']:8.2f} {f['cpu_s']:8.2f} {ratio:6.2f}x "
            f"{rss / mib:9.1f} {rss / arrays:8.2f}x"
        )
    streamed = figures["streamed"]
    print(
        f"  tracemalloc peak, streamed: reading {streamed['traced_read_peak'] / mib:,.1f} MiB "
        f"({streamed['traced_read_peak'] / arrays:.2f}x arrays), whole load_graph "
        f"{streamed['traced_load_peak'] / mib:,.1f} MiB "
        f"({streamed['traced_load_peak'] / arrays:.2f}x arrays; the rest is CircuitGraph's "
        "normalising and validating)"
    )
    whole = figures["whole-document"]
    print(
        f"  streamed vs whole document: {whole['cpu_s'] / streamed['cpu_s']:.1f}x faster, "
        f"{whole['rss_peak_above_start'] / streamed['rss_peak_above_start']:.1f}x less RSS"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=20_000)
    parser.add_argument("--edges", type=int, default=1_010_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--file", type=Path, help="read this Neuronpedia file instead")
    parser.add_argument("--gzip", action="store_true", help="write the file gzipped")
    parser.add_argument("--measure", choices=READERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:  # a child process: one reader, figures as JSON on the last line
        print(json.dumps(measure(args.measure, args.file, args.repeats)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file
        if path is None:
            path = Path(tmp) / ("layered.json.gz" if args.gzip else "layered.json")
            print(f"writing a layered graph of {args.nodes:,} nodes / {args.edges:,} links…")
            write_file(path, args.nodes, args.edges)
        figures = {}
        for reader in READERS:
            print(f"measuring {reader}…", flush=True)
            figures[reader] = run_child(reader, path, args.repeats)
        report(path, figures)


if __name__ == "__main__":
    main()
