"""The report's tables read on a second connection while the rules run (``reports/_tables.py``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from agentprof.analytics import Filters
from agentprof.exceptions import ConfigError
from agentprof.reports import StoreInfo, build_report, render_json
from agentprof.reports.rules._config import RulesConfig
from agentprof.store import second_reader
from tests.reports.rules.test_sampling import CALLS, sampling_store

GENERATED_AT = datetime(2026, 1, 2, 8, 30, tzinfo=UTC)
STORE = StoreInfo(location=".agentprof", dialect="duckdb")
WORKER = "agentprof-report-tables"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sa.Engine]:
    engine = sampling_store(tmp_path_factory.mktemp("tables"))
    yield engine
    engine.dispose()


def _workers() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith(WORKER)]


@pytest.mark.parametrize("max_calls", [0, 3000], ids=["every call", "sampled"])
def test_the_report_read_beside_the_rules_is_the_report_read_in_turn(engine: sa.Engine, max_calls: int) -> None:
    config = RulesConfig(max_calls=max_calls)
    with engine.connect() as conn:
        alone = build_report(conn, store=STORE, generated_at=GENERATED_AT, rules_config=config)
        with second_reader(conn) as beside:
            assert beside is not None
            together = build_report(conn, store=STORE, generated_at=GENERATED_AT, rules_config=config, beside=beside)
    assert render_json(together) == render_json(alone)
    assert together.summary.model_calls == CALLS
    assert together.recommendations  # the comparison covers findings, scaled by the tables' groups when sampled
    assert (together.recommendations_basis is not None) == bool(max_calls)
    assert not _workers()


def test_a_failing_query_beside_the_rules_is_raised(engine: sa.Engine, tmp_path: Path) -> None:
    other = sa.create_engine(f"duckdb:///{tmp_path / 'empty.duckdb'}")  # no tables to read
    try:
        with engine.connect() as conn, other.connect() as beside:
            with pytest.raises(sa.exc.ProgrammingError, match="model_calls"):
                build_report(conn, store=STORE, rules_config=RulesConfig(), beside=beside)
    finally:
        other.dispose()
    assert not _workers()


def test_rules_that_fail_leave_no_worker_behind(engine: sa.Engine) -> None:
    with engine.connect() as conn, second_reader(conn) as beside:
        with pytest.raises(ConfigError, match="unknown rule 'nope'"):
            build_report(conn, store=STORE, rules_config=RulesConfig(enabled=["nope"]), beside=beside)
        assert not _workers()
        assert beside is not None and beside.execute(sa.text("SELECT 1")).scalar_one() == 1  # still usable


def test_the_tables_alone_match_a_filtered_selection(engine: sa.Engine) -> None:
    filters = Filters(task="research")
    with engine.connect() as conn:
        alone = build_report(conn, filters, store=STORE, generated_at=GENERATED_AT)
        with second_reader(conn) as beside:
            together = build_report(conn, filters, store=STORE, generated_at=GENERATED_AT, beside=beside)
    assert render_json(together) == render_json(alone)
    assert [step.task for step in together.steps] == ["research"] * len(together.steps)
