"""R7 ``retry_storm``: repeated attempts within one step, and what the billed ones cost.

An *attempt chain* is a sequence of calls in one step of one task (same ``task_id`` and step name)
where each call repeats its predecessor, all within ``window_seconds`` of the chain's first call:

* **retry after an error**: the same ``request_fingerprint`` as an earlier call that errored;
* **re-ask**: the request is an earlier *successful* call's whole request plus one or two appended
  messages ending with a user turn (the agent rejected the output and asked again: its prefix up to
  all but the last 1-2 segments equals the earlier call's full prefix). The earlier call must
  have finished with known finish reasons and no tool call: an agent loop appends messages the
  same way, and only the earlier call having asked for a tool tells the two apart.

SDK-level retries are in ``attempts`` (a call with ``attempts = 3`` made two failed HTTP attempts
first). A chain is a storm when its attempts (calls plus SDK retries) reach ``min_attempts``.

Billed waste = the recorded cost of every call of the chain but the last (a rejected completion
was billed in full), claimed from the ledger. Errored HTTP attempts usually carry no usage: they
are unpriced and counted as latency in the evidence, never as dollars. The point estimate is the
whole billed waste (confidence ``high``: arithmetic on recorded costs); the range's low end halves
it because some retries are the right answer to a transient error.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from ._base import ZERO, CallRecord, Confidence, Finding, RuleContext

_NS = 1_000_000_000
_HALF = Decimal("0.5")


@dataclass(slots=True)
class _Chain:
    calls: list[CallRecord]
    attempts: int
    reasks: int = 0
    error_retries: int = 0


def _is_error(call: CallRecord) -> bool:
    return call.status == "error"


# A prefix list in the recorder's exact layout, ``[boundary,...,boundary]``, where no value is ``hash``
# (so ``"hash"`` occurs only as a key); the groups are the last boundary's hash and role.
_RECORDER_LAYOUT = re.compile(
    r'\[(?:\{"hash":"(?!hash")[^"]*","tokens":\d+,"index":-?\d+,"role":"(?!hash")[^"]*"\},)*'
    r'\{"hash":"(?!hash")([^"]*)","tokens":\d+,"index":-?\d+,"role":"(?!hash")([^"]*)"\}\]'
)
_BOUNDARY_START = '{"hash":"'


def _tail(call: CallRecord, earlier: bool) -> tuple[tuple[str, ...], str] | None:
    """What the re-ask logic reads of the call's prefixes: the last boundaries' hashes (last first) and role.

    The hashes are the last three when ``earlier`` (a re-ask check) and the last role is ``user``,
    else the last one; ``None`` when the call has no boundaries. Exactly what
    :attr:`CallRecord.prefixes` says, at a third of the cost: ``prefixes`` reads the recorder's
    layout with a regular expression when ``"hash"`` occurs only as its keys, which one
    ``fullmatch`` checks here, and its boundaries then start where ``{"hash":"`` does, so the last
    ones are found from the end without building a tuple per boundary. Any other text goes through
    :attr:`CallRecord.prefixes` itself.
    """
    text = call.prefix_fingerprints_json
    if not text:
        return None
    match = _RECORDER_LAYOUT.fullmatch(text)
    if match is None:
        prefixes = call.prefixes
        if not prefixes:
            return None
        role = prefixes[-1][3]
        return tuple(prefix[0] for prefix in prefixes[: -4 if earlier and role == "user" else -2 : -1]), role
    role = match[2]
    if not earlier or role != "user":
        return (match[1],), role
    hashes = [match[1]]
    end = match.start(1) - len(_BOUNDARY_START)
    for _ in range(2):
        end = text.rfind(_BOUNDARY_START, 0, end)
        if end < 0:
            break
        at = end + len(_BOUNDARY_START)
        hashes.append(text[at : text.index('"', at)])
    return tuple(hashes), role


def _chains(calls: Sequence[CallRecord], window_ns: int) -> list[_Chain]:
    """Link the calls of every step of every task into attempt chains (see the module docstring).

    One pass over the calls in time order; the earlier attempts are found by dictionary lookups
    keyed by (task, step, fingerprint) and (task, step, full-request prefix hash). Most calls need
    neither: only fingerprints that errored somewhere are followed (the others can never lead to
    an errored attempt), and prefixes are read only for re-ask targets and for calls in a step that
    already has one.
    """
    chain_of: dict[str, _Chain] = {}
    by_fingerprint: dict[tuple[str, str, str], CallRecord] = {}
    targets: dict[str, dict[str, dict[str, CallRecord]]] = {}  # task -> step -> full-request prefix hash -> call
    chains: list[_Chain] = []
    errored = {call.request_fingerprint for call in calls if call.status == "error"}
    for call in calls:
        task_id = call.task_id
        if task_id is None:
            continue
        step = call.step_name
        finish = call.finish_reasons
        # A re-ask target: a successful call that answered (no tool calls), since rejecting that answer
        # is what a re-ask does. Unknown finish reasons never link: an agent loop appends messages
        # exactly like a re-ask, and only the earlier call having asked for tools tells them apart.
        reaskable = bool(finish) and call.status != "error" and "tool" not in (finish or "")
        earlier = None
        fingerprint = call.request_fingerprint
        if fingerprint in errored and fingerprint:
            key = (task_id, step, fingerprint)
            earlier = by_fingerprint.get(key)
            by_fingerprint[key] = call
            if earlier is not None and not _is_error(earlier):
                earlier = None
        is_reask = False
        steps = targets.get(task_id)
        step_targets = steps.get(step) if steps is not None else None
        may_reask = earlier is None and step_targets is not None
        # Reading prefixes is the costly part: only re-ask targets and calls that may re-ask need them.
        if reaskable or may_reask:
            tail = _tail(call, may_reask)
            if tail is not None:
                hashes, role = tail
                if may_reask and step_targets is not None and role == "user":
                    # A re-ask sends the earlier request again plus 1-2 messages (its answer, the feedback).
                    for earlier_hash in hashes[1:]:
                        candidate = step_targets.get(earlier_hash)
                        if candidate is not None:
                            earlier, is_reask = candidate, True
                            break
                if reaskable:
                    if step_targets is None:
                        if steps is None:
                            steps = targets[task_id] = {}
                        step_targets = steps[step] = {}
                    step_targets[hashes[0]] = call
        attempts = call.attempts
        if earlier is not None:
            chain = chain_of.get(earlier.span_id)
            if chain is None:
                # Chains are made only when a second attempt appears: most calls are never retried.
                earlier_attempts = earlier.attempts if earlier.attempts and earlier.attempts > 1 else 1
                chain = _Chain([earlier], earlier_attempts)
                chain_of[earlier.span_id] = chain
                chains.append(chain)
            if call.start_ns - chain.calls[0].start_ns <= window_ns:
                chain.calls.append(call)
                chain.attempts += attempts if attempts and attempts > 1 else 1
                if is_reask:
                    chain.reasks += 1
                else:
                    chain.error_retries += 1
                chain_of[call.span_id] = chain
        elif attempts and attempts > 1:
            # A lone call the SDK retried is a chain of its own.
            chain = _Chain([call], attempts)
            chain_of[call.span_id] = chain
            chains.append(chain)
    return chains


class RetryStormRule:
    """Find attempt chains of at least ``min_attempts`` and claim their billed failed attempts."""

    kind = "retry_storm"

    def run(self, context: RuleContext) -> list[Finding]:
        """Return one finding per (task name, step, model) that had retry storms."""
        settings = context.config.retry_storm
        window_ns = int(settings.window_seconds * _NS)
        grouped: dict[tuple[str, str, str], list[_Chain]] = defaultdict(list)
        for chain in _chains(context.workload.calls, window_ns):
            if chain.attempts >= settings.min_attempts:
                last = chain.calls[-1]
                grouped[(last.task_name, last.step_name, last.model or "")].append(chain)
        return [self._finding(key, grouped[key], context) for key in sorted(grouped)]

    def _finding(self, key: tuple[str, str, str], chains: list[_Chain], context: RuleContext) -> Finding:
        task, step, model = key
        ledger = context.ledger
        billed = ZERO
        billed_attempts = unbilled_attempts = 0
        failed_latency_ns = 0
        errors: Counter[str] = Counter()
        claimed: list[str] = []
        current = ZERO
        for chain in chains:
            for call in chain.calls:
                current += call.cost or ZERO
                if _is_error(call):
                    errors[call.error_type or "error"] += 1
            for call in chain.calls[:-1]:
                if call.cost is not None and call.cost > 0:
                    billed_attempts += 1
                    granted = ledger.claim(call.span_id, call.cost)
                    billed += granted
                    if granted:
                        claimed.append(call.span_id)
                else:
                    unbilled_attempts += 1
                    failed_latency_ns += call.end_ns - call.start_ns
        sdk_retries = sum(max((call.attempts or 1) - 1, 0) for chain in chains for call in chain.calls)
        attempts = sum(chain.attempts for chain in chains)
        reasks = sum(chain.reasks for chain in chains)
        error_retries = sum(chain.error_retries for chain in chains)
        confidence: Confidence = "high" if billed > 0 else "low"
        evidence = {
            "storms": len(chains),
            "attempts": attempts,
            "calls": sum(len(chain.calls) for chain in chains),
            "reasks": reasks,
            "retries_after_error": error_retries,
            "sdk_retries": sdk_retries,
            "billed_failed_attempts": billed_attempts,
            "unbilled_failed_attempts": unbilled_attempts + sdk_retries,
            "unbilled_failed_latency_ms": round(failed_latency_ns / 1e6, 1),
            "error_types": dict(sorted(errors.items())),
            "billed_waste_usd": str(billed),
            "window_seconds": context.config.retry_storm.window_seconds,
            "formula": "sum of the recorded cost of every attempt but the last in each storm",
        }
        if reasks >= error_retries:
            fix = "validate with strict structured outputs or fix the prompt instead of re-asking"
            cause = "re-asks after rejected outputs"
        else:
            fix = "add backoff and rate limiting, or fix the failing request"
            cause = "retries after errors" if not sdk_retries or error_retries else "SDK retries"
        suggestion = (
            f"Step '{step}' made {attempts} attempts in {len(chains)} retry storm"
            f"{'s' if len(chains) != 1 else ''} ({cause}): {fix}"
        )
        return Finding(
            kind=self.kind,
            task=task,
            step=step,
            model=model or None,
            current_cost_usd=current,
            estimated_savings_usd=billed,
            savings_range_usd=(billed * _HALF, billed),
            confidence=confidence,
            suggestion=suggestion,
            evidence=evidence,
            span_ids=tuple(claimed),
        )


RULE = RetryStormRule()
