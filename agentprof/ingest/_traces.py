"""Whole traces of received spans turned into spool rows: tasks, steps and model calls.

Attribution needs the tree, so spans are mapped a trace at a time:

* agentprof's own spans (``agentprof.kind``) carry their task and step and map as they are;
* a foreign span's task is the outermost span above it that is a root or an agent/workflow
  span (so an HTTP request span around an agent is the task, and the agent a step in it; a
  root that is itself a model call stays untracked, as live calls outside a task do);
  every other span inside a task is a step (``tool`` for tool spans), and a model call is
  attributed to the innermost step and its task;
* **aggregates never count**: agent and workflow spans are never model calls, whatever usage
  they repeat, and a span classified only by "model plus tokens" is one only if no descendant
  carries tokens;
* **one HTTP call counts once**: of nested model-call spans (a framework span around an SDK
  span) the innermost is kept, unless only the outer one knows the usage; the dropped span's
  children are re-parented to its parent. Spans under a kept model call (HTTP client spans)
  are part of the call and not stored. Two calls with the same ``gen_ai.response.id`` and
  usage in one trace are one call.

Every model call is priced by :class:`~agentprof._mapping.SpanMapper`, as live calls are; a
cost the emitter provided is used only when agentprof has no price for the model. Its request
fingerprints come from :class:`~agentprof.ingest._fingerprints.FingerprintCache` (the same
values ``fingerprint_request`` gives for the rebuilt body, without serialising it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentprof import _semconv as sc
from agentprof._calls import Payload
from agentprof._mapping import SpanFields, SpanMapper, set_fingerprint_fields
from agentprof._records import SPOOL_COLUMNS, SpoolRow, money_text
from agentprof.ingest import _content, _dialects
from agentprof.ingest._decode import FlatSpan
from agentprof.ingest._dialects import Role
from agentprof.ingest._fingerprints import FingerprintCache
from agentprof.ingest._prepare import JsonCache, prepare
from agentprof.ingest._prices import PriceMemo

_UNKNOWN_SERVICE = "unknown_service"


@dataclass(slots=True)
class MappedSpans:
    """Rows made from a batch of spans, and what was left out."""

    rows: list[SpoolRow] = field(default_factory=list)
    tasks: int = 0
    steps: int = 0
    model_calls: int = 0
    skipped: int = 0

    def add(self, other: MappedSpans) -> None:
        """Accumulate ``other`` into this result."""
        self.rows.extend(other.rows)
        self.tasks += other.tasks
        self.steps += other.steps
        self.model_calls += other.model_calls
        self.skipped += other.skipped


@dataclass(slots=True)
class _Context:
    task_id: str | None = None
    task_name: str | None = None
    steps: tuple[tuple[str, str], ...] = ()  # (name, kind) from outer to inner


class TraceMapper:
    """Maps received spans to spool rows a trace at a time (see the module docstring)."""

    def __init__(self, mapper: SpanMapper | None = None) -> None:
        self._mapper = mapper or SpanMapper(_UNKNOWN_SERVICE, pricer=PriceMemo())
        self._json = JsonCache()
        self._fingerprints = FingerprintCache()
        self._resource: tuple[Mapping[str, Any] | None, dict[str, Any]] = (None, {})

    def map_spans(self, spans: Iterable[FlatSpan], *, only: set[str] | None = None) -> MappedSpans:
        """Map ``spans`` (any number of traces); with ``only``, emit rows just for those span ids."""
        by_trace: dict[str, list[FlatSpan]] = {}
        for span in spans:
            by_trace.setdefault(span.trace_id, []).append(span)
        result = MappedSpans()
        for trace_spans in by_trace.values():
            result.add(self.map_trace(trace_spans, only=only))
        return result

    def map_trace(self, spans: list[FlatSpan], *, only: set[str] | None = None) -> MappedSpans:
        """Map the spans of one trace."""
        tree = _Tree(spans, self._json)
        result = MappedSpans()
        for span, parent_id, context in tree.walk():
            if only is not None and span.span_id not in only:
                continue
            row = self._row(tree, span, parent_id, context)
            if row is not None:
                row = _typed(row)
            if row is None:
                result.skipped += 1
                continue
            result.rows.append(row)
            kind = row["kind"]
            if kind == sc.KIND_TASK:
                result.tasks += 1
            elif kind == sc.KIND_STEP:
                result.steps += 1
            else:
                result.model_calls += 1
        if only is None:
            result.skipped += tree.dropped
        else:
            result.skipped += len(only & tree.dropped_ids)
        return result

    def _row(self, tree: _Tree, span: FlatSpan, parent_id: str | None, context: _Context) -> SpoolRow | None:
        span_id = span.span_id
        role = tree.roles[span_id]
        attributes = tree.attributes[span_id]
        options = self._resource_options(span.resource)
        if role is Role.NATIVE:
            # native spans carry their context
            fields = SpanFields(
                span.trace_id, span_id, span.parent_span_id, span.name, span.start_ns, span.end_ns, span.error
            )
            native = dict(attributes)
            host = native.get(sc.SERVER_ADDRESS)
            if isinstance(host, str) and host and sc.AGENTPROF_BASE_URL not in native:
                native[sc.AGENTPROF_BASE_URL] = f"https://{host}"  # as the OTLP tee prices it
            return self._mapper.map_fields(fields, native, None, **options)
        fields = SpanFields(span.trace_id, span_id, parent_id, span.name, span.start_ns, span.end_ns, span.error)
        mapped = self._foreign_attributes(tree, span, role, context)
        if role is not Role.MODEL_CALL:
            return self._mapper.map_fields(fields, mapped, None, **options)
        provider = mapped.get(sc.GEN_AI_PROVIDER_NAME) or mapped.get(sc.GEN_AI_SYSTEM)
        fingerprints = self._fingerprints.request_fingerprints(
            attributes, mapped.get(sc.GEN_AI_REQUEST_MODEL), str(provider or "")
        )
        text = _content.output_text(attributes)
        payload = Payload(
            body=None,  # fingerprinted above, from the messages: no body is serialised to be parsed again
            base_url=mapped.get(sc.AGENTPROF_BASE_URL),
            output=(lambda: text) if text is not None else None,
            raw_usage=attributes.get("gen_ai.usage.raw"),
            capture_content=False,
        )
        row = self._mapper.map_fields(fields, mapped, payload, **options)
        if row is None:
            return None
        if fingerprints is not None:  # what SpanMapper sets from a request body's fingerprints
            set_fingerprint_fields(row, fingerprints)
        if not row.get("priced"):
            _use_provided_cost(row, attributes)
        return row

    def _resource_options(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """``service_name`` and ``pid`` for map_fields; spans of one request share their resource."""
        if self._resource[0] is resource:
            return self._resource[1]
        service = resource.get(sc.SERVICE_NAME)
        pid = resource.get("process.pid")
        options: dict[str, Any] = {
            "service_name": service if isinstance(service, str) and service else _UNKNOWN_SERVICE,
            "pid": pid if isinstance(pid, int) and not isinstance(pid, bool) and abs(pid) < 2**31 else None,
        }
        self._resource = (resource, options)
        return options

    def _foreign_attributes(self, tree: _Tree, span: FlatSpan, role: Role, context: _Context) -> dict[str, Any]:
        attributes = tree.attributes[span.span_id]
        if tree.is_task[span.span_id]:
            name = _dialects.display_name(attributes, span.name, role)
            return {sc.AGENTPROF_KIND: sc.KIND_TASK, sc.AGENTPROF_TASK_ID: span.span_id, sc.AGENTPROF_TASK_NAME: name}
        out: dict[str, Any]
        if role is Role.MODEL_CALL:
            out = _dialects.model_call_attributes(attributes)
            step = context.steps[-1] if context.steps else None
            out[sc.AGENTPROF_STEP_NAME] = (
                step[0] if step else (sc.TASK_LEVEL_STEP if context.task_id else sc.UNTRACKED_TASK)
            )
            if step:
                out[sc.AGENTPROF_STEP_KIND] = step[1]
        else:
            out = {sc.AGENTPROF_KIND: sc.KIND_STEP}
            own = context.steps[-1]  # the walk pushed this span's own step
            out[sc.AGENTPROF_STEP_NAME], out[sc.AGENTPROF_STEP_KIND] = own
        if context.steps:
            out[sc.AGENTPROF_STEP_PATH] = "/".join(name for name, _ in context.steps)
        if context.task_id is not None:
            out[sc.AGENTPROF_TASK_ID] = context.task_id
            out[sc.AGENTPROF_TASK_NAME] = context.task_name
        return out


_INT_LIMIT = {"BIGINT": 2**63, "INTEGER": 2**31}
_PYTHON_TYPE = {"VARCHAR": str, "BIGINT": int, "INTEGER": int, "BOOLEAN": bool, "DOUBLE": float}
#: The one Python type a column's values must have (``bool`` is not an ``int`` here, nor an ``int`` a ``str``).
_EXPECTED: dict[str, type] = {name: _PYTHON_TYPE[kind] for name, kind in SPOOL_COLUMNS.items() if kind in _PYTHON_TYPE}
_LIMITS = {name: _INT_LIMIT[kind] for name, kind in SPOOL_COLUMNS.items() if kind in _INT_LIMIT}
_FLOAT_INT_LIMIT = 2**1023  # an int beyond this has no float (float() would raise)
_KINDS = (sc.KIND_TASK, sc.KIND_STEP, sc.KIND_MODEL_CALL)


def _typed(row: SpoolRow) -> SpoolRow | None:
    """The row with every value of its column's type or NULL: received data is untrusted.

    A value DuckDB cannot read as the column type would condemn the whole segment (moved to
    ``spool/bad/``), losing good rows with it; a NULL loses only that value. A row without ids
    or a valid kind is dropped. Integers must fit their column, floats be finite; a ``DOUBLE``
    column also takes an ``int`` (as a float). One look-up per key: this runs for every
    received span (~50 keys), and the value usually has its column's type already.
    """
    typed: SpoolRow = {}
    expected = _EXPECTED.get
    for key, value in row.items():
        value_type = type(value)
        want = expected(key)
        if value_type is want:
            if want is int:
                limit = _LIMITS[key]
                if not -limit < value < limit:
                    continue
            elif want is float and not math.isfinite(value):
                continue
            typed[key] = value
        elif want is float and value_type is int and -_FLOAT_INT_LIMIT < value < _FLOAT_INT_LIMIT:
            typed[key] = float(value)
    if typed.get("kind") not in _KINDS or not typed.get("span_id"):
        return None
    return typed


def _use_provided_cost(row: SpoolRow, attributes: Mapping[str, Any]) -> None:
    """Fill an unpriced call's cost from the emitter's own figure, saying so in the provenance."""
    if not row.get("usage_known"):
        return
    cost = _dialects.provided_cost(attributes)
    if cost is None:
        return
    row.update(
        priced=True,
        cost_usd=money_text(cost),
        price_source="provided",
        price_version="emitter-provided cost",
        unpriced_reason=None,
    )


class _Usage(dict[str, bool]):
    """Whether each foreign span reports tokens, found when first asked: most spans never are.

    Asked lazily, it still sees the attributes as received: a wrapper's attributes are merged
    only into a call with no model call below it, whose usage is asked (by the wrapper) before
    the merge and never after.
    """

    def __init__(self, tree: _Tree) -> None:
        super().__init__()
        self._tree = tree

    def __missing__(self, span_id: str) -> bool:
        tree = self._tree
        known = span_id in tree.roles and tree.roles[span_id] is not Role.NATIVE
        found = self[span_id] = known and _dialects.has_usage(tree.attributes[span_id])
        return found


class _Tree:
    """One trace's spans with roles decided, duplicates dropped and tasks marked."""

    def __init__(self, spans: list[FlatSpan], json_cache: JsonCache | None = None) -> None:
        self.spans: dict[str, FlatSpan] = {}
        for span in spans:
            self.spans.setdefault(span.span_id, span)  # a retried span is the same span
        self.attributes: dict[str, dict[str, Any]] = {}
        self.roles: dict[str, Role] = {}
        for span_id, span in self.spans.items():
            prepared = span.attributes if sc.AGENTPROF_KIND in span.attributes else prepare(span.attributes, json_cache)
            self.attributes[span_id] = prepared
            self.roles[span_id] = _dialects.classify(prepared, span.name)
        self.children: dict[str | None, list[str]] = {}
        for span_id, span in self.spans.items():
            parent = span.parent_span_id if span.parent_span_id in self.spans else None
            self.children.setdefault(parent, []).append(span_id)
        for ids in self.children.values():
            ids.sort(key=lambda i: (self.spans[i].start_ns, i))
        self.order = self._preorder()
        self.dropped_ids: set[str] = set()
        self._resolve_model_calls()
        self.dropped = len(self.dropped_ids)
        self.is_task: dict[str, bool] = {}

    def _preorder(self) -> list[str]:
        order: list[str] = []
        seen: set[str] = set()
        stack = list(reversed(self.children.get(None, [])))
        while stack:
            span_id = stack.pop()
            if span_id in seen:  # a cycle in broken input: visit once
                continue
            seen.add(span_id)
            order.append(span_id)
            stack.extend(reversed(self.children.get(span_id, [])))
        # spans in a parent cycle never reach a root: treat the rest as roots, in input order
        for span_id in self.spans:
            if span_id not in seen:
                seen.add(span_id)
                order.append(span_id)
                self.children.setdefault(None, []).append(span_id)
        return order

    def _descendants(self, span_id: str) -> list[str]:
        found: list[str] = []
        stack = list(self.children.get(span_id, []))
        seen = {span_id}
        while stack:
            child = stack.pop()
            if child in seen:
                continue
            seen.add(child)
            found.append(child)
            stack.extend(self.children.get(child, []))
        return found

    def _resolve_model_calls(self) -> None:
        usage = _Usage(self)
        for span_id in self.order:
            if self.roles[span_id] is not Role.MODEL_CALL or span_id in self.dropped_ids:
                continue
            attributes = self.attributes[span_id]
            below = self._descendants(span_id)
            if not _dialects.has_explicit_llm_marker(attributes) and any(usage[d] for d in below):
                self.roles[span_id] = Role.OTHER  # an aggregate, not a call
                continue
            inner = [d for d in below if self.roles[d] is Role.MODEL_CALL]
            if inner and not (usage[span_id] and not any(usage[d] for d in inner)):
                self.dropped_ids.add(span_id)  # a wrapper around the real call below it
                if len(inner) == 1:  # one call: what only the wrapper recorded (content, model) still counts
                    merged = self.attributes[inner[0]]
                    for key, value in attributes.items():
                        merged.setdefault(key, value)
                continue
            self.dropped_ids.update(below)  # inner duplicates without usage, HTTP spans of the call
        seen: set[tuple[Any, ...]] = set()
        for span_id in self.order:
            if self.roles[span_id] is not Role.MODEL_CALL or span_id in self.dropped_ids:
                continue
            attributes = self.attributes[span_id]
            response_id = attributes.get(sc.GEN_AI_RESPONSE_ID)
            if isinstance(response_id, str) and response_id:
                call_key = (response_id, *_dialects.usage_key(attributes))
                if call_key in seen:
                    self.dropped_ids.add(span_id)
                else:
                    seen.add(call_key)

    def walk(self) -> Iterable[tuple[FlatSpan, str | None, _Context]]:
        """Yield kept spans in pre-order with their effective parent and task/step context."""
        # A root keeps the parent id it was sent with (its parent may arrive later or elsewhere).
        stack: list[tuple[str, str | None, _Context]] = [
            (span_id, self.spans[span_id].parent_span_id, _Context())
            for span_id in reversed(self.children.get(None, []))
        ]
        visited: set[str] = set()
        while stack:
            span_id, parent_id, context = stack.pop()
            if span_id in visited:
                continue
            visited.add(span_id)
            span = self.spans[span_id]
            if span_id in self.dropped_ids:
                if self.roles[span_id] is Role.MODEL_CALL and not self._under_kept_call(span_id):
                    for child in reversed(self.children.get(span_id, [])):
                        stack.append((child, parent_id, context))
                continue
            own = self._context_for(span_id, parent_id not in self.spans, context)
            yield span, parent_id, own
            for child in reversed(self.children.get(span_id, [])):
                stack.append((child, span_id, own))

    def _under_kept_call(self, span_id: str) -> bool:
        parent = self.spans[span_id].parent_span_id
        while parent is not None and parent in self.spans:
            if self.roles[parent] is Role.MODEL_CALL and parent not in self.dropped_ids:
                return True
            parent = self.spans[parent].parent_span_id
        return False

    def _context_for(self, span_id: str, is_root: bool, context: _Context) -> _Context:
        role = self.roles[span_id]
        attributes = self.attributes[span_id]
        span = self.spans[span_id]
        if role is Role.NATIVE:
            self.is_task[span_id] = False
            kind = attributes.get(sc.AGENTPROF_KIND)
            if kind == sc.KIND_TASK:
                return _Context(span_id, str(attributes.get(sc.AGENTPROF_TASK_NAME) or span.name))
            if kind == sc.KIND_STEP:
                name = str(attributes.get(sc.AGENTPROF_STEP_NAME) or span.name)
                kind_name = str(attributes.get(sc.AGENTPROF_STEP_KIND) or "step")
                return _Context(context.task_id, context.task_name, (*context.steps, (name, kind_name)))
            return context
        becomes_task = context.task_id is None and (role is Role.AGENT or (is_root and role is not Role.MODEL_CALL))
        self.is_task[span_id] = becomes_task
        if becomes_task:
            return _Context(span_id, _dialects.display_name(attributes, span.name, role))
        if role is Role.MODEL_CALL:
            return context
        name = _dialects.display_name(attributes, span.name, role)
        kind_name = "tool" if role is Role.TOOL else "step"
        return _Context(context.task_id, context.task_name, (*context.steps, (name, kind_name)))
