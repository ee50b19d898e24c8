from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from agentprof import analytics
from agentprof.analytics import CallNode, Filters, StepNode, TaskLookupError
from agentprof.exceptions import AgentprofError
from tests.analytics._data import T1, T2, T3, T4


def test_tasks_list_newest_first(conn: sa.Connection) -> None:
    rows = analytics.tasks_list(conn, Filters(), limit=20)
    assert [
        (row.task_id, row.name, row.success, row.model_calls, row.unpriced_calls, row.cost_usd) for row in rows
    ] == [
        (T4, "research", True, 1, 1, None),
        (T3, "research", True, 0, 0, Decimal(0)),
        (T2, "triage", False, 1 + 1, 1, Decimal("0.001")),
        (T1, "triage", True, 4, 0, Decimal("0.0335")),
    ]
    assert rows[2].error_type == "ValueError"
    assert rows[3].input_tokens == 1000 + 1000 + 5000 + 1000


def test_tasks_list_filters_and_limit(conn: sa.Connection) -> None:
    assert [row.task_id for row in analytics.tasks_list(conn, Filters(task="triage"), limit=1)] == [T2]
    assert len(analytics.tasks_list(conn, limit=None)) == 4


def test_task_tree_nests_steps_and_sums_costs(conn: sa.Connection) -> None:
    tree = analytics.task_tree(conn, T1)
    assert tree.task.task_id == T1
    assert tree.task.cost_usd == Decimal("0.0335")
    classify, answer, task_level_call = tree.children
    assert isinstance(classify, StepNode) and isinstance(answer, StepNode)
    assert (classify.name, classify.model_calls, classify.cost_usd) == ("classify", 2, Decimal("0.003"))
    assert [child.span_id for child in classify.children] == ["c1", "c2"]
    assert (answer.name, answer.model_calls, answer.cost_usd, answer.duration_ms) == (
        "answer",
        1,
        Decimal("0.03"),
        500.0,
    )
    (draft,) = answer.children
    assert isinstance(draft, StepNode) and draft.name == "draft"
    (call,) = draft.children
    assert isinstance(call, CallNode)
    assert (call.provider, call.model, call.cost_usd, call.cache_read_tokens) == (
        "anthropic",
        "claude-sonnet-4-20250514",
        Decimal("0.03"),
        4000,
    )
    assert isinstance(task_level_call, CallNode) and task_level_call.span_id == "c4"


def test_task_tree_unpriced_nodes(conn: sa.Connection) -> None:
    tree = analytics.task_tree(conn, T4)
    (search,) = tree.children
    assert isinstance(search, StepNode)
    assert (search.step_kind, search.model_calls, search.unpriced_calls, search.cost_usd) == ("tool", 1, 1, None)
    (call,) = search.children
    assert isinstance(call, CallNode) and call.cost_usd is None and not call.priced
    assert analytics.task_tree(conn, T3).children == ()


def test_task_tree_accepts_a_unique_prefix(conn: sa.Connection) -> None:
    assert analytics.task_tree(conn, "a1a1a1a1a").task.task_id == T1
    assert analytics.task_tree(conn, "A1A1A1A1B").task.task_id == T2


@pytest.mark.parametrize(
    ("wanted", "message"),
    [
        ("a1a1a1a1", "ambiguous: it starts a1a1a1a1a1a1a1a1, a1a1a1a1b2b2b2b2"),
        ("ffff", "no task with id 'ffff'"),
        ("a1%", "no task with id 'a1%'"),
        ("", "a task id is needed"),
    ],
)
def test_task_tree_lookup_errors(conn: sa.Connection, wanted: str, message: str) -> None:
    with pytest.raises(TaskLookupError, match=message.replace("'", ".")) as caught:
        analytics.task_tree(conn, wanted)
    assert isinstance(caught.value, AgentprofError)
