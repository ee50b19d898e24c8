"""``agentprof report`` of two revisions on the same store, interleaved, each run in a fresh process.

``report.py`` times the current code; this script answers "did my change make the report faster,
and did it change what the report says?". It checks the base revision out into a temporary git
worktree, then each round runs, in alternating order (A B, B A, ...), one fresh Python process per
revision: one warm-up report (imports, price data, the OS page cache), then one timed
``agentprof report --format json`` in-process through click. It prints each revision's median,
the paired ratio base / head per round, and whether the two JSON reports are equal (numbers are
compared by value, so ``"3.000000"`` equals ``"3.00000000"``; the time stamp is ignored).

Each revision is imported from a directory of symbolic links laid out as the installed package
(``agentprof/`` with ``reports``, ``integrations`` and ``examples`` inside it) and put first on
``PYTHONPATH``, so neither run can pick up the other's modules through the editable install.

    python benchmarks/ab_report.py --base HEAD~3                          # 100,000 calls, 6 rounds
    python benchmarks/ab_report.py --base main --head HEAD --keep /tmp/s100k --rounds 8
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from rules import build_store

REPO = Path(__file__).resolve().parent.parent
#: Source directories mapped into the ``agentprof`` package (``[tool.setuptools.package-dir]``).
_MAPPED = ("reports", "integrations", "examples")

_TIMED = r"""
import json, sys, time
from click.testing import CliRunner
import agentprof
from agentprof.cli import main
if not agentprof.__file__.startswith(sys.argv[2]):
    raise SystemExit(f"imported {agentprof.__file__}, not the tree under test {sys.argv[2]}")
try:
    from agentprof.reports.rules._base import clear_parse_caches
except ImportError:
    def clear_parse_caches(): pass
runner = CliRunner()
arguments = ["report", "--db", sys.argv[1], "--format", "json"]
warm = runner.invoke(main, arguments)
clear_parse_caches()
start = time.perf_counter()
result = runner.invoke(main, arguments)
elapsed = time.perf_counter() - start
if result.exit_code != 0 or warm.exit_code != 0:
    raise SystemExit(f"agentprof report failed: {result.output}")
print(json.dumps({"seconds": elapsed, "report": result.output}))
"""


def package_layout(tree: Path, into: Path) -> Path:
    """A directory to put on ``PYTHONPATH`` whose ``agentprof`` package is ``tree``'s, laid out as installed."""
    package = into / "agentprof"
    package.mkdir(parents=True)
    for entry in (tree / "agentprof").iterdir():
        (package / entry.name).symlink_to(entry)
    for name in _MAPPED:
        if (tree / name).is_dir():
            (package / name).symlink_to(tree / name)
    return into


def run_report(layout: Path, store: Path) -> tuple[float, Any]:
    """(seconds, parsed JSON report) of one timed report in a fresh process importing ``layout``."""
    env = dict(os.environ, PYTHONPATH=str(layout))
    completed = subprocess.run(
        [sys.executable, "-c", _TIMED, str(store), str(layout)],
        capture_output=True,
        text=True,
        env=env,
        cwd=layout,
        check=False,
    )
    if completed.returncode != 0:
        raise SystemExit(f"report under {layout} failed:\n{completed.stderr or completed.stdout}")
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    return result["seconds"], json.loads(result["report"])


def differences(a: Any, b: Any, path: str = "$") -> list[str]:
    """Where two JSON reports differ, comparing numeric strings by value and ignoring ``generated_at``."""
    if isinstance(a, dict) and isinstance(b, dict):
        found: list[str] = []
        for key in sorted(set(a) | set(b)):
            if key == "generated_at":
                continue
            if key not in a or key not in b:
                found.append(f"{path}.{key}: only in {'head' if key in b else 'base'}")
            else:
                found += differences(a[key], b[key], f"{path}.{key}")
        return found
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items vs {len(b)}"]
        return [found for i, (x, y) in enumerate(zip(a, b, strict=True)) for found in differences(x, y, f"{path}[{i}]")]
    if a == b or (isinstance(a, str) and isinstance(b, str) and _same_number(a, b)):
        return []
    return [f"{path}: {a!r} vs {b!r}"]


def _same_number(a: str, b: str) -> bool:
    try:
        return Decimal(a) == Decimal(b)
    except InvalidOperation:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="git revision to compare against (checked out in a worktree)")
    parser.add_argument("--head", help="git revision under test (default: the working tree as it is)")
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--keep", type=Path, help="build the store here (or reuse the one already there)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agentprof-ab-") as tmp:
        scratch = Path(tmp)
        store = args.keep or scratch / "store"
        if not (store / "agentprof.duckdb").exists():
            build_store(store, args.calls)
        trees = {"base": _worktree(args.base, scratch / "base-tree")}
        trees["head"] = _worktree(args.head, scratch / "head-tree") if args.head else REPO
        try:
            layouts = {name: package_layout(tree, scratch / f"{name}-path") for name, tree in trees.items()}
            times: dict[str, list[float]] = {"base": [], "head": []}
            reports: dict[str, Any] = {}
            for round_ in range(args.rounds):
                order = ["base", "head"] if round_ % 2 == 0 else ["head", "base"]
                for name in order:
                    seconds, reports[name] = run_report(layouts[name], store)
                    times[name].append(seconds)
                print(f"round {round_ + 1}: base {times['base'][-1]:.3f} s, head {times['head'][-1]:.3f} s", flush=True)
        finally:
            for tree in trees.values():
                if tree != REPO:
                    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
    ratios = sorted(b / h for b, h in zip(times["base"], times["head"], strict=True))
    print(f"base {args.base}: median {statistics.median(times['base']):.3f} s")
    print(f"head {args.head or 'working tree'}: median {statistics.median(times['head']):.3f} s")
    paired = ", ".join(f"{ratio:.2f}" for ratio in ratios)
    print(f"base / head, paired per round: {paired} (median {statistics.median(ratios):.2f}x)")
    found = differences(reports["base"], reports["head"])
    print("reports equal (numbers by value, time stamp ignored)" if not found else "reports DIFFER:")
    for line in found[:20]:
        print(f"  {line}")


def _worktree(revision: str, path: Path) -> Path:
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(path), revision], check=True)
    return path


if __name__ == "__main__":
    main()
