"""Time and peak memory of ``agentprof whatif`` on the synthetic store of ``benchmarks/rules.py``.

Each run is a separate ``agentprof whatif ... --format json`` process (what a user waits for,
interpreter start-up included; agentprof's modules are compiled to bytecode first, as a wheel
install does), so its peak resident memory is its own: read from ``getrusage(RUSAGE_CHILDREN)``
after it exits, which reports the largest child so far, so the steps run smallest first. Targets
cover the three kinds of price data: one price for all time (gpt-4.1-nano), a price change on a
date (claude-sonnet-4-6 on 2026-03-13) and off-peak hours (deepseek-chat).

Run::

    python benchmarks/whatif.py                                     # 100,000 calls
    python benchmarks/whatif.py --calls 10000000 --keep /tmp/s10m   # builds the store once (~2 min)
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bytecode import compile_like_an_install  # benchmarks/ is sys.path[0]
from rules import ensure_store, store_arguments

#: (step, target model, provider): the step's calls in the synthetic store, smallest first.
CASES = (
    ("lookup", "gpt-4.1-nano", "openai"),
    ("classify", "deepseek-chat", "deepseek"),
    ("draft", "gpt-4.1-nano", "openai"),
    ("agent_loop", "claude-sonnet-4-6", "anthropic"),
)


def run_whatif(directory: Path, step: str, model: str, provider: str) -> float:
    """Seconds of one ``agentprof whatif`` process."""
    command = [sys.executable, "-c", "from agentprof.cli import main; main()", "whatif", "--db", str(directory)]
    command += ["--step", step, "--model", model, "--provider", provider, "--format", "json"]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"agentprof whatif failed: {result.stdout}{result.stderr}")
    return elapsed


def main_() -> None:
    args = store_arguments(__doc__, rounds=3)
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp) / "store"
        ensure_store(directory, args.calls)
        compile_like_an_install()
        run_whatif(directory, *CASES[0])  # warm-up: the OS page cache
        for step, model, provider in CASES:
            times = [run_whatif(directory, step, model, provider) for _ in range(args.rounds)]
            peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(
                f"whatif --step {step} --model {model}: median {statistics.median(times):.2f} s "
                f"({', '.join(f'{value:.2f}' for value in times)}), peak memory so far {peak_mib:.0f} MiB"
            )


if __name__ == "__main__":
    main_()
