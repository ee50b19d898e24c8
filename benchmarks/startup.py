"""Start-up cost: ``import agentprof`` and ``agentprof --help``, each in a fresh interpreter.

Targets (issue 6): ``import agentprof`` under 150 ms and ``agentprof --help`` under 300 ms.
A bare ``python -c pass`` is measured in the same run, interleaved, so the figures can be read
with and without the interpreter's own start-up. agentprof's modules are compiled to bytecode
first, as installing it does (see ``_bytecode.py``).

Run::

    python benchmarks/startup.py              # 15 rounds
    python benchmarks/startup.py --rounds 30
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from _bytecode import compile_like_an_install  # benchmarks/ is sys.path[0]

VARIANTS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import agentprof": [sys.executable, "-c", "import agentprof"],
    "agentprof --help": [sys.executable, "-c", "from agentprof.cli import main; main(['--help'])"],
}


def run_once(command: list[str]) -> float:
    """Wall time of one run of ``command``, in milliseconds."""
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    compile_like_an_install()
    for command in VARIANTS.values():  # warm the file-system cache
        run_once(command)
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for round_number in range(args.rounds):
        order = list(VARIANTS.items())
        if round_number % 2:
            order.reverse()
        for name, command in order:
            times[name].append(run_once(command))
    bare = statistics.median(times["python -c pass"])
    for name, values in times.items():
        median = statistics.median(values)
        extra = "" if name == "python -c pass" else f"  ({median - bare:+.0f} ms over the bare interpreter)"
        print(f"{name:<18} median {median:6.0f} ms  p25..p75 {_quartiles(values)}{extra}")


def _quartiles(values: list[float]) -> str:
    quartiles = statistics.quantiles(values, n=4)
    return f"{quartiles[0]:.0f}..{quartiles[2]:.0f} ms"


if __name__ == "__main__":
    main()
