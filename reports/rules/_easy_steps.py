"""What makes a step look easy enough for a cheaper model: the ``cheaper_model`` rule's signals.

A step qualifies on its outputs (short, structured, few distinct answers) and a low reasoning
share; a step with long and varied outputs never does. Measured with C-level ``map``/``filter``
passes over a cluster's calls: these run on every step of a store, so no Python runs per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from math import ceil
from operator import add, attrgetter, is_not, lt
from statistics import median

from ._base import CallRecord
from ._candidates import StepNeeds
from ._config import CheaperModelConfig

_STRUCTURED_FORMATS = frozenset({"json_schema", "json_object"})
_UNFORCED_TOOL_CHOICES = frozenset({"auto", "none"})
_VARIED_CHUNK = 1024

INPUT = attrgetter("input_tokens")
OUTPUT = attrgetter("output_tokens")
REASONING = attrgetter("reasoning_tokens")
OUTPUT_HASH = attrgetter("output_hash")
TOOL_COUNT = attrgetter("tool_count")
RESPONSE_FORMAT = attrgetter("response_format")
is_set = partial(is_not, None)
is_positive = partial(lt, 0)


@dataclass(frozen=True, slots=True)
class Signals:
    """What makes a step look easy, measured on its calls."""

    median_output: float
    p90_output: int
    distinct_ratio: float | None
    distinct_outputs: int
    structured: bool
    reasoning_share: float
    met: tuple[str, ...]
    long_and_varied: bool


def is_structured(call: CallRecord) -> bool:
    """A JSON-schema / JSON-object response format, or a forced tool call."""
    forced_tool = call.tool_choice is not None and call.tool_choice not in _UNFORCED_TOOL_CHOICES
    return call.response_format in _STRUCTURED_FORMATS or forced_tool


def step_signals(calls: list[CallRecord], settings: CheaperModelConfig) -> Signals | None:
    """Measure the easy-step signals of a cluster (the thresholds are in ``cheaper_model``'s docstring).

    ``None`` for a step with long and varied outputs, which is never flagged: that is known once
    its outputs are found varied, before all of them are counted (agent loops and drafts, most of
    a store's calls, are dropped there).
    """
    outputs = sorted(map(OUTPUT, calls))
    median_output = float(median(outputs))
    hashes = list(filter(is_set, map(OUTPUT_HASH, calls)))
    if median_output > settings.max_median_output_tokens and varied(hashes, settings.max_distinct_output_ratio):
        return None
    p90_output = outputs[ceil(0.9 * len(outputs)) - 1]
    distinct = len(set(hashes))
    distinct_ratio = round(distinct / len(hashes), 4) if hashes else None
    structured = all(map(is_structured, calls))
    total_output = sum(outputs)
    reasoning_share = round(sum(map(REASONING, calls)) / total_output, 4) if total_output else 0.0
    short = median_output <= settings.max_median_output_tokens and p90_output <= settings.max_p90_output_tokens
    few_answers = distinct_ratio is not None and distinct_ratio <= settings.max_distinct_output_ratio
    met = tuple(
        name
        for name, holds in (
            ("short_outputs", short),
            ("structured_output", structured),
            ("classification_like", few_answers),
            ("low_reasoning", reasoning_share <= settings.max_reasoning_share),
        )
        if holds
    )
    return Signals(
        median_output=median_output,
        p90_output=p90_output,
        distinct_ratio=distinct_ratio,
        distinct_outputs=distinct,
        structured=structured,
        reasoning_share=reasoning_share,
        met=met,
        long_and_varied=median_output > settings.max_median_output_tokens and not few_answers,
    )


def varied(hashes: list[str], max_distinct_ratio: float) -> bool:
    """Whether the distinct share of ``hashes`` (rounded as in the evidence) is above ``max_distinct_ratio``.

    Counted a chunk at a time: the share of what is counted so far only grows, so once it is above
    the limit the answer is yes without reading the rest. No hashes: no share, so not few answers.
    """
    total = len(hashes)
    seen: set[str] = set()
    for start in range(0, total, _VARIED_CHUNK):
        seen.update(hashes[start : start + _VARIED_CHUNK])
        if round(len(seen) / total, 4) > max_distinct_ratio:
            return True
    return not total


def step_needs(calls: list[CallRecord], signals: Signals, max_reasoning_share: float) -> StepNeeds:
    return StepNeeds(
        tools=any(map(is_positive, filter(is_set, map(TOOL_COUNT, calls)))),
        json_schema="json_schema" in map(RESPONSE_FORMAT, calls),
        context_tokens=max(map(add, map(INPUT, calls), map(OUTPUT, calls))),
        reasoning=signals.reasoning_share > max_reasoning_share,
        reasoning_recorded=any(map(is_positive, map(REASONING, calls))),
    )


def describe(signals: Signals) -> str:
    """A few words on why the step looks easy, for the suggestion."""
    parts = []
    if "classification_like" in signals.met:
        parts.append(f"{signals.distinct_outputs} distinct answers")
    if "short_outputs" in signals.met:
        parts.append(f"median {signals.median_output:g} output tokens")
    if "structured_output" in signals.met:
        parts.append("structured output")
    return ", ".join(parts[:2]) or "low reasoning"
