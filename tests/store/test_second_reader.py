"""``second_reader``: a second connection only where it reads what the first one committed."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from agentprof.store import second_reader


def test_a_duckdb_file_gets_a_second_connection_to_the_same_data(tmp_path: Path) -> None:
    engine = sa.create_engine(f"duckdb:///{tmp_path / 'store.duckdb'}")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1), (2)")
            conn.commit()
            with second_reader(conn) as beside:
                assert beside is not None and beside is not conn
                assert beside.connection.dbapi_connection is not conn.connection.dbapi_connection
                assert beside.exec_driver_sql("SELECT sum(x) FROM t").scalar_one() == 3
            assert beside.closed
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "url",
    ["duckdb:///:memory:", "sqlite:///{tmp}/store.sqlite", "sqlite://"],
    ids=["duckdb in memory", "sqlite file", "sqlite in memory"],
)
def test_other_databases_get_none(tmp_path: Path, url: str) -> None:
    # In memory, another connection would open a new, empty database; another server's could read
    # at another moment than the first.
    engine = sa.create_engine(url.format(tmp=tmp_path))
    try:
        with engine.connect() as conn, second_reader(conn) as beside:
            assert beside is None
    finally:
        engine.dispose()
