from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from agentprof.reports import Report, StoreInfo, build_report
from agentprof.store.schema import metadata
from tests.analytics._data import populate

GENERATED_AT = datetime(2025, 1, 2, 8, 30, tzinfo=UTC)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine("duckdb:///" + str(tmp_path / "t.duckdb"))
    metadata.create_all(engine)
    with engine.begin() as conn:
        populate(conn)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def report(engine: sa.Engine) -> Report:
    with engine.connect() as conn:
        return build_report(conn, store=StoreInfo(location=".agentprof", dialect="duckdb"), generated_at=GENERATED_AT)
