"""Per-call cost of request fingerprinting along an agent loop: the full parse against the incremental one.

Run by hand from the repository root (never collected as a test):

    python benchmarks/fingerprint.py                        # 3 workloads x 15 rounds x 50 iterations (~1 min)
    python benchmarks/fingerprint.py --rounds 5 --workloads anthropic
    python benchmarks/fingerprint.py --json fingerprint.json

The workload is a coding agent's loop of 50 model calls: a ~6 kB system prompt, 8 tool
definitions, a task, then per iteration one tool call and its result (a file of 3 to 14 kB, code
with quotes, newlines and a few non-ASCII characters), so the context grows to ~100k tokens
(~470 kB of body at the last call). The request bodies are the ones the real SDKs send: each
loop is run once through ``openai`` (``chat.completions.create``, ``responses.create`` with input
items) and ``anthropic`` (``messages.create`` with ``cache_control`` on the system prompt, the
last tool and the newest tool result, moved forward every call as Claude Code does) against the
local test server (``agentprof.testserver``, in-process), and each body is captured from the
SDK's HTTP client request hook. Nothing of the SDK or the server is timed.

Variants, all timed on the same bodies, interleaved call by call (the order rotates), so that
each variant sees the same seconds of this noisy machine:

* ``old``: the fingerprinting before issue #6 (its algorithm is kept below; only the
  response-format and tool-choice lookups, a few µs, are left out): ``json.loads`` of the whole
  body, a canonical re-dump of it, a re-dump per segment, then ``prefixes_json`` as the exporter
  called it;
* ``full``: today's full parse (:func:`agentprof._fingerprint_facts.fingerprint_full`), the
  fallback for bodies the incremental path cannot read;
* ``incremental``: :class:`agentprof._fingerprint_walk.IncrementalFingerprinter`, a fresh one
  per round, fed the loop's bodies in order (what the exporter thread sees).

Per iteration: median over rounds of the time per call (ms). Per loop: median over rounds of
the sum of the 50 calls. The first round is a warm-up that also checks that ``incremental`` and
``full`` return identical fingerprints for every body (``MISMATCH`` and exit 1 otherwise).
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import xxhash

from agentprof._fingerprint_facts import fingerprint_full
from agentprof._fingerprint_walk import IncrementalFingerprinter
from agentprof.testserver._server import TestServer

ITERATIONS = 50
VARIANTS = ("old", "full", "incremental")
WORKLOADS = ("openai", "anthropic", "responses")


# --- the loop's content ---------------------------------------------------------------------------
SYSTEM = "\n".join(
    f"Rule {n}: when working in the repository, read the relevant files before editing them, keep changes "
    f"minimal, run the tests after every edit and explain what changed (rule {n} of the house style)."
    for n in range(1, 36)
)
TASK = "Fix the failing test in tests/test_parser.py: the parser drops the last token when a line ends with a comment."
TOOL_NAMES = ("read_file", "write_file", "list_dir", "grep", "run_tests", "git_diff", "search_docs", "ask_user")


def tool_schema(name: str) -> dict[str, Any]:
    properties = {
        "path": {"type": "string", "description": f"Repository-relative path the {name} tool works on."},
        "pattern": {"type": "string", "description": "A regular expression (Python syntax) to look for."},
        "limit": {"type": "integer", "description": "At most this many lines or results.", "minimum": 1},
    }
    return {"type": "object", "properties": properties, "required": ["path"]}


def tool_output(k: int) -> str:
    """A file of 3 to 14 kB: code with quotes, newlines and a few non-ASCII characters."""
    lines = [f'"""Module {k}: the parser\'s helpers — tokens, comments and résumé of the line."""']
    size = 3_000 + (k * 7_919) % 11_000
    n = 0
    while sum(len(line) + 1 for line in lines) < size:
        lines.append(f"def helper_{k}_{n}(line: str) -> list[str]:")
        lines.append(f'    """Split one line into tokens (case {n}) → list."""')
        lines.append(f"    tokens = [part for part in line.split(\" \") if part and part != '#{n}']")
        lines.append(f"    return tokens  # ✓ checked by test_{k}_{n}")
        n += 1
    return "\n".join(lines)


def arguments(k: int) -> dict[str, Any]:
    return {"path": f"src/parser/module_{k}.py", "limit": 400}


def openai_messages(k: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": TASK}]
    for j in range(k):
        call = {"id": f"call_{j:04d}", "type": "function", "function": {"name": "read_file"}}
        call["function"]["arguments"] = json.dumps(arguments(j))
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"call_{j:04d}", "content": tool_output(j)})
    return messages


def anthropic_messages(k: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": TASK}]
    for j in range(k):
        use = {"type": "tool_use", "id": f"toolu_{j:04d}", "name": "read_file", "input": arguments(j)}
        messages.append({"role": "assistant", "content": [{"type": "text", "text": f"Reading module {j}."}, use]})
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": f"toolu_{j:04d}", "content": tool_output(j)}
        if j == k - 1:  # the breakpoint moves to the newest tool result on every call
            result["cache_control"] = {"type": "ephemeral"}
        messages.append({"role": "user", "content": [result]})
    return messages


def responses_input(k: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = [{"role": "user", "content": TASK}]
    for j in range(k):
        call_id = f"call_{j:04d}"
        items.append(
            {"type": "function_call", "call_id": call_id, "name": "read_file", "arguments": json.dumps(arguments(j))}
        )
        items.append({"type": "function_call_output", "call_id": call_id, "output": tool_output(j)})
    return items


def capture_bodies(workload: str) -> list[bytes]:
    """The loop's 50 request bodies, as the SDK serialised them (captured by its HTTP client's request hook)."""
    bodies: list[bytes] = []

    def keep(request: Any) -> None:
        bodies.append(bytes(request.content))

    with TestServer(prompt_cache=False) as server:
        if workload == "anthropic":
            import anthropic

            client = anthropic.Anthropic(
                base_url=server.anthropic_base_url,
                api_key="test",
                http_client=anthropic.DefaultHttpxClient(event_hooks={"request": [keep]}),
            )
            tools = [
                {"name": name, "description": f"The {name} tool.", "input_schema": tool_schema(name)}
                for name in TOOL_NAMES
            ]
            tools[-1]["cache_control"] = {"type": "ephemeral"}
            system = [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}]
            for k in range(ITERATIONS):
                client.messages.create(
                    model="claude-sonnet-4-6",
                    max_tokens=4096,
                    system=system,
                    messages=anthropic_messages(k),
                    tools=tools,
                )
        else:
            import openai

            client = openai.OpenAI(
                base_url=server.openai_base_url,
                api_key="test",
                http_client=openai.DefaultHttpxClient(event_hooks={"request": [keep]}),
            )
            for k in range(ITERATIONS):
                if workload == "openai":
                    tools = [
                        {
                            "type": "function",
                            "function": {
                                "name": name,
                                "description": f"The {name} tool.",
                                "parameters": tool_schema(name),
                            },
                        }
                        for name in TOOL_NAMES
                    ]
                    client.chat.completions.create(
                        model="gpt-4.1", messages=openai_messages(k), tools=tools, temperature=0
                    )
                else:
                    tools = [
                        {
                            "type": "function",
                            "name": name,
                            "description": f"The {name} tool.",
                            "parameters": tool_schema(name),
                        }
                        for name in TOOL_NAMES
                    ]
                    client.responses.create(model="gpt-4.1", instructions=SYSTEM, input=responses_input(k), tools=tools)
    if len(bodies) != ITERATIONS:
        raise RuntimeError(f"{workload}: captured {len(bodies)} bodies, expected {ITERATIONS}")
    return bodies


# --- the fingerprinting before issue #6 (plus the exporter's prefixes_json call) -------------------
_TRANSPORT_FIELDS = frozenset({"stream", "stream_options", "metadata", "user", "store", "service_tier"})
_EMBEDDINGS_FIELDS = frozenset({"encoding_format", "dimensions"})


def _old_canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _old_count_cache_control(value: Any) -> int:
    if isinstance(value, dict):
        own = 1 if value.get("cache_control") else 0
        return own + sum(_old_count_cache_control(item) for item in value.values())
    if isinstance(value, list):
        return sum(_old_count_cache_control(item) for item in value)
    return 0


def _old_responses_input(request: dict[str, Any]) -> list[Any] | None:
    value = request.get("input")
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return value
    if isinstance(value, str) and not _EMBEDDINGS_FIELDS & request.keys():
        return [{"role": "user", "content": value}]
    return None


def old_fingerprint(body: bytes, provider: str) -> str | None:
    """``fingerprint_request`` + ``prefixes_json`` as of the start of issue #6 (minus two small lookups)."""
    try:
        request = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(request, dict):
        return None
    canonical = {key: value for key, value in request.items() if key not in _TRANSPORT_FIELDS}
    xxhash.xxh3_128_hexdigest(_old_canonical(canonical))
    segments: list[tuple[int, str, Any]] = []
    tools = request.get("tools")
    if tools:
        segments.append((-2, "tools", tools))
    system = request.get("system") or request.get("instructions")
    if system:
        segments.append((-1, "system", system))
    messages = request.get("messages")
    if messages is None:
        messages = _old_responses_input(request)
    if isinstance(messages, list):
        for index, message in enumerate(messages):
            role = message.get("role", message.get("type", "")) if isinstance(message, dict) else ""
            segments.append((index, str(role), message))
    running = xxhash.xxh3_64_digest(f"{provider}\x00{request.get('model', '')}".encode())
    chars = 0
    prefixes: list[dict[str, Any]] = []
    for index, role, segment in segments:
        encoded = _old_canonical(segment)
        chars += len(encoded)
        running = xxhash.xxh3_64_digest(running + encoded)
        prefixes.append({"hash": running.hex(), "tokens": chars // 4, "index": index, "role": role})
    _old_count_cache_control(request)
    return json.dumps(prefixes, separators=(",", ":"))  # prefixes_json, as the exporter then called it


# --- timing ---------------------------------------------------------------------------------------
@dataclass
class Figures:
    """One workload's timings: per iteration and variant, the time (ns) of each recorded round."""

    sizes: list[int]
    per_call: dict[str, list[list[int]]]
    per_loop: dict[str, list[int]]


def check(workload: str, provider: str, bodies: list[bytes]) -> bool:
    fingerprinter = IncrementalFingerprinter()
    for k, body in enumerate(bodies):
        incremental = fingerprinter.fingerprint(body, provider)
        full = fingerprint_full(body, provider)
        if incremental is None or incremental != full or incremental.prefixes_json != full.prefixes_json:
            print(f"MISMATCH: {workload} iteration {k}: incremental and full fingerprints differ")
            return False
    return True


def measure(provider: str, bodies: list[bytes], rounds: int) -> Figures:
    figures = Figures(
        sizes=[len(body) for body in bodies],
        per_call={variant: [[] for _ in bodies] for variant in VARIANTS},
        per_loop={variant: [] for variant in VARIANTS},
    )
    for round_ in range(rounds + 1):  # round 0 warms up
        fingerprinter = IncrementalFingerprinter()
        run: dict[str, Callable[[bytes], object]] = {
            "old": lambda body: old_fingerprint(body, provider),
            "full": lambda body: fingerprint_full(body, provider),
            "incremental": lambda body, fingerprinter=fingerprinter: fingerprinter.fingerprint(body, provider),
        }
        totals = dict.fromkeys(VARIANTS, 0)
        gc.collect()
        for k, body in enumerate(bodies):
            shift = (k + round_) % len(VARIANTS)
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                started = time.perf_counter_ns()
                run[variant](body)
                elapsed = time.perf_counter_ns() - started
                if round_:
                    figures.per_call[variant][k].append(elapsed)
                    totals[variant] += elapsed
        if round_:
            for variant in VARIANTS:
                figures.per_loop[variant].append(totals[variant])
    return figures


def report(workload: str, figures: Figures) -> dict[str, Any]:
    def ms(ns: float) -> float:
        return ns / 1e6

    print(f"\n{workload}: per call, median over rounds (ms)")
    print(f"{'iter':>4} {'body kB':>8} {'old':>8} {'full':>8} {'incr':>8} {'old/incr':>9}")
    rows = []
    for k, size in enumerate(figures.sizes):
        medians = {variant: statistics.median(figures.per_call[variant][k]) for variant in VARIANTS}
        rows.append({"iteration": k, "body_bytes": size, **{f"{v}_ms": ms(medians[v]) for v in VARIANTS}})
        print(
            f"{k:>4} {size / 1000:>8.1f} {ms(medians['old']):>8.3f} {ms(medians['full']):>8.3f} "
            f"{ms(medians['incremental']):>8.3f} {medians['old'] / medians['incremental']:>8.1f}x"
        )
    loops = {variant: statistics.median(figures.per_loop[variant]) for variant in VARIANTS}
    spread = {variant: (min(figures.per_loop[variant]), max(figures.per_loop[variant])) for variant in VARIANTS}
    print(f"{workload}: per loop of {len(figures.sizes)} calls, median over rounds (min..max), ms")
    for variant in VARIANTS:
        low, high = spread[variant]
        print(f"  {variant:<12} {ms(loops[variant]):>8.1f}  ({ms(low):.1f}..{ms(high):.1f})")
    print(f"  old / incremental: {loops['old'] / loops['incremental']:.1f}x")
    return {"per_call": rows, "per_loop_ms": {variant: ms(loops[variant]) for variant in VARIANTS}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="recorded rounds per workload (default 15)")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated: " + ", ".join(WORKLOADS))
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args(argv)
    workloads = [name for name in args.workloads.split(",") if name]
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    print(
        f"{datetime.date.today()}  nproc={os.cpu_count()}  python {platform.python_version()}  "
        f"{ITERATIONS} iterations x {args.rounds} rounds"
    )
    results: dict[str, Any] = {}
    for workload in workloads:
        provider = "anthropic" if workload == "anthropic" else "openai"
        bodies = capture_bodies(workload)
        if not check(workload, provider, bodies):
            return 1
        results[workload] = report(workload, measure(provider, bodies, args.rounds))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                {
                    "date": str(datetime.date.today()),
                    "nproc": os.cpu_count(),
                    "python": platform.python_version(),
                    "rounds": args.rounds,
                    "workloads": results,
                },
                out,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
