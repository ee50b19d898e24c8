"""Spool ingestion of two revisions on the same segments, interleaved, each run in a fresh process.

``ingest.py`` times the current code; this script answers "did my change make ingestion faster?"
on one set of spool segments. The segments are written once, by the working tree's ``SpoolWriter``
and the rows of ``ingest.py`` (the spool format is the same for every revision). Each round runs,
in alternating order (A B, B A, ...), one fresh Python process per revision, which creates a new
store (untimed), copies the segments into its spool (untimed) and times ``open_store`` +
``ingest_spool``. It prints each revision's median rows per second and CPU seconds, and the paired
ratio head / base per round. Revisions are checked out and imported as in ``ab_report.py``.

    python benchmarks/ab_ingest.py --base HEAD~1                      # 200 segments x 1,000 rows, 6 rounds
    python benchmarks/ab_ingest.py --base main --head HEAD --segments 50 --rows 4000 --rounds 8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from ab_report import REPO, package_layout
from ab_report import _worktree as worktree
from ingest import write_spool

from agentprof._spool import SpoolWriter

_TIMED = r"""
import json, shutil, sys, tempfile, time
from pathlib import Path
import agentprof
from agentprof._config import resolve_store_location
from agentprof.store import open_store
if not agentprof.__file__.startswith(sys.argv[2]):
    raise SystemExit(f"imported {agentprof.__file__}, not the tree under test {sys.argv[2]}")
with tempfile.TemporaryDirectory(prefix="agentprof-ab-ingest-") as folder:
    location = resolve_store_location(Path(folder) / "store")
    with open_store(location, create=True):
        pass
    location.spool_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(sys.argv[1]).glob("seg-*.jsonl")):
        shutil.copyfile(path, location.spool_dir / path.name)
    start, cpu = time.perf_counter(), time.process_time()
    with open_store(location, ingest=False) as store:
        result = store.ingest_spool()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
print(json.dumps({"seconds": seconds, "cpu": cpu, "rows": result.rows}))
"""


def run_ingest(layout: Path, segments: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, rows) of one timed ingestion in a fresh process importing ``layout``."""
    completed = subprocess.run(
        [sys.executable, "-c", _TIMED, str(segments), str(layout)],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(layout)),
        cwd=layout,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"ingestion under {layout} failed:\n{completed.stderr or completed.stdout}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return result["seconds"], result["cpu"], result["rows"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against (checked out in a worktree)")
    parser.add_argument("--head", help="git revision under test (default: the working tree as it is)")
    parser.add_argument("--segments", type=int, default=200)
    parser.add_argument("--rows", type=int, default=1_000, help="rows per segment")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    expected = args.segments * args.rows
    with tempfile.TemporaryDirectory(prefix="agentprof-ab-") as tmp:
        scratch = Path(tmp)
        segments = scratch / "segments"
        write_spool(SpoolWriter(segments), 0, expected, args.rows)
        trees = {"base": worktree(args.base, scratch / "base-tree")}
        trees["head"] = worktree(args.head, scratch / "head-tree") if args.head else REPO
        try:
            layouts = {name: package_layout(tree, scratch / f"{name}-path") for name, tree in trees.items()}
            rates: dict[str, list[float]] = {"base": [], "head": []}
            cpus: dict[str, list[float]] = {"base": [], "head": []}
            for round_ in range(args.rounds):
                order = ["base", "head"] if round_ % 2 == 0 else ["head", "base"]
                for name in order:
                    seconds, cpu, rows = run_ingest(layouts[name], segments)
                    if rows != expected:
                        raise SystemExit(f"{name} ingested {rows} rows, not {expected}")
                    rates[name].append(rows / seconds)
                    cpus[name].append(cpu)
                print(
                    f"round {round_ + 1}: base {rates['base'][-1]:,.0f} rows/s (CPU {cpus['base'][-1]:.2f} s), "
                    f"head {rates['head'][-1]:,.0f} rows/s (CPU {cpus['head'][-1]:.2f} s)",
                    flush=True,
                )
        finally:
            for tree in trees.values():
                if tree != REPO:
                    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
    for name, revision in (("base", args.base), ("head", args.head or "working tree")):
        print(
            f"{name} {revision}: median {statistics.median(rates[name]):,.0f} rows/s, "
            f"CPU {statistics.median(cpus[name]):.2f} s"
        )
    ratios = sorted(h / b for b, h in zip(rates["base"], rates["head"], strict=True))
    paired = ", ".join(f"{ratio:.2f}" for ratio in ratios)
    print(f"head / base rows per second, paired per round: {paired} (median {statistics.median(ratios):.2f}x)")


if __name__ == "__main__":
    main()
