from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from agentprof._config import resolve_store_location
from agentprof.store import open_store
from tests.analytics._data import populate


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("AGENTPROF_DB", raising=False)
    return CliRunner(env={"COLUMNS": "120"})


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A real store (created through ``open_store``) holding the data set of ``tests/analytics/_data.py``."""
    directory = tmp_path / "store"
    with open_store(resolve_store_location(directory), create=True) as store, store.engine.begin() as conn:
        populate(conn)
    return directory


@pytest.fixture
def empty_store_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "empty"
    with open_store(resolve_store_location(directory), create=True):
        pass
    return directory
