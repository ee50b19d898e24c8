"""Load the selection once, run the rules in a fixed order on one ledger, rank the findings.

Why a fixed order: rules overlap (an exact duplicate also missed prompt caching; a retried call is
also a duplicate), and each one claims its savings per call from a shared
:class:`~._base.ResidualLedger`. Running them in :data:`RULE_ORDER` makes the claims, and so the
totals, the same on every run: the most certain, cheapest-to-apply fixes claim first, the
speculative ones (``cheaper_model``) get what is left.

Loading is the only part that touches the database: SQLAlchemy Core selects of model calls and
tool steps, only the columns :class:`~._base.CallRecord` needs, built positionally. Most of that
time is the driver converting values to Python objects one at a time, so on DuckDB the fields
that repeat across calls (names, statuses, formats) are fetched once per distinct combination
(:func:`_load_shaped`): 100,000 calls load in about half a second (``benchmarks/rules.py``).
"""

from __future__ import annotations

import gc
import importlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from itertools import islice
from operator import add, attrgetter, itemgetter, lt
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from agentprof.analytics import CallGroup, Filters, call_groups
from agentprof.analytics._sql import call_conditions, model_name, priced_cost
from agentprof.exceptions import ConfigError
from agentprof.store.schema import model_calls, spans

from ._base import CallRecord, Finding, ResidualLedger, Rule, RuleContext, ToolRecord, Workload
from ._config import RulesConfig
from ._sampling import Sample, group_totals, plan_sample, scale_findings, window_condition

#: The order rules run (and claim savings) in; see the module docstring for why it is fixed.
RULE_ORDER: tuple[str, ...] = (
    "retry_storm",
    "exact_cache",
    "redundant_tool",
    "prompt_cache",
    "wasted_cache_write",
    "context_growth",
    "long_context_tier",
    "cheaper_model",
)


def _tokens(column: sa.Column[Any]) -> ColumnElement[int]:
    return sa.func.coalesce(column, 0)


# In CallRecord's field order: records are built positionally from these rows.
_CALL_COLUMNS: tuple[ColumnElement[Any], ...] = (
    model_calls.c.span_id,
    model_calls.c.task_id,
    model_calls.c.task_name,
    model_calls.c.step_name,
    model_calls.c.step_kind,
    model_calls.c.provider,
    model_name(),
    model_calls.c.request_model,
    model_calls.c.start_time_ns,
    model_calls.c.end_time_ns,
    model_calls.c.status,
    model_calls.c.error_type,
    model_calls.c.usage_known,
    _tokens(model_calls.c.input_tokens),
    _tokens(model_calls.c.output_tokens),
    _tokens(model_calls.c.cache_read_tokens),
    _tokens(model_calls.c.cache_write_tokens),
    model_calls.c.cache_write_5m_tokens,
    model_calls.c.cache_write_1h_tokens,
    _tokens(model_calls.c.reasoning_tokens),
    priced_cost(),
    model_calls.c.request_fingerprint,
    model_calls.c.prefix_fingerprints,
    model_calls.c.cache_breakpoints,
    model_calls.c.tool_count,
    model_calls.c.response_format,
    model_calls.c.tool_choice,
    model_calls.c.output_hash,
    model_calls.c.temperature,
    model_calls.c.attempts,
    model_calls.c.finish_reasons,
    model_calls.c.server_address,
    model_calls.c.operation,
)

_TOOL_COLUMNS: tuple[ColumnElement[Any], ...] = (
    spans.c.span_id,
    spans.c.task_id,
    spans.c.task_name,
    spans.c.step_name,
    spans.c.start_time_ns,
    spans.c.end_time_ns,
    spans.c.status,
    spans.c.tool_args_hash,
    spans.c.tool_result_hash,
)


#: Fields with few distinct values in a whole store (names, statuses, formats, small counts): on
#: DuckDB they are fetched once per distinct combination (:func:`_load_shaped`). Strings, integers
#: and booleans only, which ``DISTINCT`` tells apart exactly as Python does (a float column could
#: have ``-0.0`` merged into ``0.0``).
_CALL_SHARED = frozenset(
    {
        "task_name",
        "step_name",
        "step_kind",
        "provider",
        "model",
        "request_model",
        "status",
        "error_type",
        "usage_known",
        "cache_breakpoints",
        "tool_count",
        "response_format",
        "tool_choice",
        "attempts",
        "finish_reasons",
        "server_address",
        "operation",
    }
)
_TOOL_SHARED = frozenset({"task_name", "step_name", "status"})
#: The order of the records (both kinds have these fields).
_ORDER = ("start_ns", "span_id")
_START_NS = attrgetter("start_ns")
#: Fields holding exact money (``Decimal``): fetched as text on DuckDB.
_MONEY_FIELDS = frozenset({"cost"})
# Above this many distinct combinations of the shared fields, fetching them once saves too little.
_MAX_SHAPES = 20_000


def _tool_conditions(filters: Filters) -> list[ColumnElement[bool]]:
    """The selection on ``spans``: the same meaning as :func:`agentprof.analytics._sql.call_conditions`."""
    conditions: list[ColumnElement[bool]] = [spans.c.kind == "step", spans.c.step_kind == "tool"]
    since = filters.since_utc
    if since is not None:
        conditions.append(spans.c.start_time >= since)
    if filters.task is not None:
        conditions.append(spans.c.task_name == filters.task)
    return conditions


def load_workload(conn: Connection, filters: Filters, sample: Sample | None = None) -> Workload:
    """Read the selection's model calls and tool steps, ordered by (start time, span id).

    Costs arrive as exact ``Decimal`` (``None`` for unpriced calls, never $0); token counts the
    provider did not report are 0 (``usage_known`` says whether they are real). With a ``sample``,
    only what started in its period (the latest calls).
    """
    call_where = call_conditions(filters)
    tool_where = _tool_conditions(filters)
    if sample is not None:
        call_where.append(window_condition(model_calls.c.start_time_ns, sample))
        tool_where.append(window_condition(spans.c.start_time_ns, sample))
    with _no_cyclic_gc():
        calls = _load_records(conn, CallRecord, _CALL_COLUMNS, _CALL_SHARED, call_where)
        tools = _load_records(conn, ToolRecord, _TOOL_COLUMNS, _TOOL_SHARED, tool_where)
    return Workload(calls=calls, tools=tools)


def _load_records(
    conn: Connection,
    record: type[CallRecord] | type[ToolRecord],
    columns: Sequence[ColumnElement[Any]],
    shared: frozenset[str],
    conditions: Sequence[ColumnElement[bool]],
) -> list[Any]:
    """Records of type ``record`` (a named tuple whose fields are ``columns``), by (start time, span id).

    On DuckDB, through :func:`_load_shaped` when it applies; otherwise one plain ordered select.
    """
    if shared and conn.dialect.name == "duckdb":
        records = _load_shaped(conn, record, columns, shared, conditions)
        if records is not None:
            return records
    fields = record._fields
    query = sa.select(*columns).where(*conditions).order_by(*(columns[fields.index(name)] for name in _ORDER))
    return list(map(partial(tuple.__new__, record), _driver_rows(conn, query)))


def _load_shaped(
    conn: Connection,
    record: type[CallRecord] | type[ToolRecord],
    columns: Sequence[ColumnElement[Any]],
    shared: frozenset[str],
    conditions: Sequence[ColumnElement[bool]],
) -> list[Any] | None:
    """The records, fetching the ``shared`` fields once per distinct combination; ``None`` if that cannot work.

    Why: DuckDB's ``fetchall`` converts every value to a Python object one by one (about 0.2 µs a
    string), which is most of the load time. The ``shared`` fields take a few hundred distinct
    combinations in a whole store, so the main select returns one ``hash()`` of them instead, and
    a ``SELECT DISTINCT`` maps each hash to the values. Two combinations with the same hash would
    show there as a repeated hash: then, or with more combinations than it saves, the caller uses
    the plain select. Money comes as ``CAST(... AS VARCHAR)``: DuckDB builds a ``Decimal`` four
    times slower than ``Decimal(str)`` builds the same one (digits and exponent) from that text.

    The records are assembled by C-level ``map`` calls (no Python code runs per row) and sorted in
    Python only if the store did not return them in order already, both cheaper than DuckDB's
    ``ORDER BY`` materialising every row. The order is the same: the key is unique (ingestion
    keeps one row per span id), and Python orders strings by code point as DuckDB's binary
    collation orders their UTF-8 bytes.
    """
    fields = record._fields
    shared_at = [i for i, name in enumerate(fields) if name in shared]
    own_at = [i for i, name in enumerate(fields) if name not in shared]
    shared_columns = [columns[i] for i in shared_at]
    shape = sa.func.hash(*shared_columns)
    shapes_query = sa.select(shape, *shared_columns).where(*conditions).distinct().limit(_MAX_SHAPES + 1)
    found = _driver_rows(conn, shapes_query)
    shapes = {row[0]: row[1:] for row in found}
    if len(shapes) != len(found) or len(found) > _MAX_SHAPES:
        return None  # a hash collision, or so many combinations that they save nothing
    money_at = [i for i in own_at if fields[i] in _MONEY_FIELDS]
    fetched = [sa.cast(columns[i], sa.String) if i in money_at else columns[i] for i in own_at]
    rows = _driver_rows(conn, sa.select(*fetched, shape).where(*conditions))
    # Each record is picked, in field order, from: the row (own fields, hash), its shared values,
    # and the money converted to Decimal.
    position = {i: at for at, i in enumerate(own_at)}
    position.update({i: len(own_at) + 1 + at for at, i in enumerate(shared_at)})
    position.update({i: len(own_at) + 1 + len(shared_at) + at for at, i in enumerate(money_at)})
    pick = itemgetter(*(position[i] for i in range(len(fields))))
    parts: Iterator[tuple[Any, ...]] = map(add, rows, map(shapes.__getitem__, map(itemgetter(len(own_at)), rows)))
    if money_at:
        amounts = [_decimals(list(map(itemgetter(own_at.index(i)), rows))) for i in money_at]
        parts = map(add, parts, zip(*amounts, strict=True))
    try:
        records = list(map(partial(tuple.__new__, record), map(pick, parts)))
    except KeyError:  # a combination written after the DISTINCT (a connection in autocommit mode)
        return None
    starts = list(map(_START_NS, records))
    if not all(map(lt, starts, islice(starts, 1, None))):  # rows come in insertion order: often time order
        records.sort(key=attrgetter(*_ORDER))
    return records


def _decimals(texts: list[str | None]) -> list[Decimal | None]:
    """``Decimal(text)`` of each text (``None`` stays ``None``), each distinct text converted once."""
    exact: dict[str | None, Decimal | None] = {text: Decimal(text) for text in set(texts) if text is not None}
    exact[None] = None
    return list(map(exact.__getitem__, texts))


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while records are built and rules run.

    Both only allocate (records, dictionaries, no reference cycles that need collecting), and with
    100,000+ live records every automatic collection of the oldest generation walks all of them:
    pausing it makes loading and the rules a third to a half faster.

    Re-enabling it is not free either: every object allocated meanwhile is still in the youngest
    generation, and the first allocation after ``gc.enable()`` would scan them all (about 0.09 s
    per 100,000 calls, twice per report). ``freeze()`` moves them out of the young generation and
    ``unfreeze()`` files them with the long-lived objects, both by splicing lists: nothing is
    scanned now, and they are still collected (cycles included) by a later full collection. That
    applies to every young object of the process, not only ours: garbage cycles a host application
    made just before the report wait for that full collection too (a test pins that they are freed).
    """
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.freeze()
            gc.unfreeze()
            gc.enable()


def _driver_rows(conn: Connection, query: sa.Select[Any]) -> list[Any]:
    """The driver's own row tuples, skipping SQLAlchemy's per-row ``Row`` objects and processors.

    That halves the load time of 100,000 calls, and it is safe for these columns: both DuckDB and
    psycopg return ``NUMERIC`` as an exact ``Decimal`` and integers, strings and booleans as such
    (SQLAlchemy's ``Numeric`` processor is what would have passed money through a float).
    """
    with conn.execute(query) as result:
        return list(result.cursor.fetchall())


def load_rule(kind: str) -> Rule:
    """Import ``reports/rules/<kind>.py`` and return its ``RULE``.

    Raises:
        ValueError: ``kind`` is not one of :data:`RULE_ORDER`.
    """
    if kind not in RULE_ORDER:
        raise ValueError(f"unknown rule {kind!r} (known: {', '.join(RULE_ORDER)})")
    module = importlib.import_module(f"{__package__}.{kind}")
    return cast(Rule, module.RULE)


def selected_kinds(config: RulesConfig, rules: Sequence[str] | None = None) -> list[str]:
    """The rules to run, in :data:`RULE_ORDER`: ``rules`` (default all) that ``config.enabled`` allows.

    Raises:
        ValueError: A name in ``rules`` is not a rule.
        ConfigError: A name in ``[tool.agentprof.rules] enabled`` is not a rule.
    """
    known = ", ".join(RULE_ORDER)
    for name in rules or ():
        if name not in RULE_ORDER:
            raise ValueError(f"unknown rule {name!r} (known: {known})")
    for name in config.enabled or ():
        if name not in RULE_ORDER:
            raise ConfigError(f"[tool.agentprof.rules] enabled: unknown rule {name!r} (known: {known})")
    wanted = set(RULE_ORDER if rules is None else rules)
    if config.enabled is not None:
        wanted &= set(config.enabled)
    return [kind for kind in RULE_ORDER if kind in wanted]


def run_workload(
    workload: Workload, config: RulesConfig | None = None, *, rules: Sequence[str] | None = None
) -> list[Finding]:
    """Run the selected rules on an already loaded workload (see :func:`run_rules`)."""
    config = config or RulesConfig()
    context = RuleContext(workload=workload, config=config, ledger=ResidualLedger(workload.calls))
    findings: list[Finding] = []
    with _no_cyclic_gc():
        for kind in selected_kinds(config, rules):
            findings.extend(load_rule(kind).run(context))
    return sorted(findings, key=lambda finding: finding.rank_key)


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the rules found, and what they read to find it.

    Attributes:
        findings: Sorted by :attr:`Finding.rank_key`; money scaled to the selection when sampled.
        sample: The period analysed when the selection exceeded ``max_calls`` (its latest calls), else ``None``.
        calls_analysed: Model calls the rules read.
    """

    findings: list[Finding]
    sample: Sample | None
    calls_analysed: int


def analyse(
    conn: Connection,
    filters: Filters,
    config: RulesConfig | None = None,
    *,
    rules: Sequence[str] | None = None,
    groups: Sequence[CallGroup] | Callable[[], Sequence[CallGroup]] | None = None,
) -> Analysis:
    """Load the selection (or, above ``config.max_calls``, a sample of it) and run the rules.

    Args:
        conn: An open connection to the store.
        filters: The selection (``since``, ``task``) as in the rest of the report.
        config: Thresholds; default :class:`RulesConfig` defaults (the CLI passes ``RulesConfig.load()``).
        rules: Only these rule kinds (still run in :data:`RULE_ORDER`); default all.
        groups: :func:`~agentprof.analytics.call_groups` of the same selection, if the caller
            has it (a sample's findings are scaled by them), or a function returning them, called
            only then (the report reads them beside the rules); read here when needed otherwise.

    Returns:
        The findings, most valuable first (savings x confidence weight, then names: the same
        records always give the same list), and the sample they came from, if any
        (:mod:`._sampling` says how a sample is drawn and scaled).
    """
    config = config or RulesConfig()
    sample = plan_sample(conn, filters, config.max_calls)
    workload = load_workload(conn, filters, sample)
    findings = run_workload(workload, config, rules=rules)
    if sample is not None:
        if groups is None:
            groups = call_groups(conn, filters)
        elif callable(groups):
            groups = groups()
        findings = scale_findings(findings, sample, workload.calls, group_totals(groups))
    return Analysis(findings=findings, sample=sample, calls_analysed=len(workload.calls))


def run_rules(
    conn: Connection, filters: Filters, config: RulesConfig | None = None, *, rules: Sequence[str] | None = None
) -> list[Finding]:
    """The findings of :func:`analyse`, most valuable first."""
    return analyse(conn, filters, config, rules=rules).findings
