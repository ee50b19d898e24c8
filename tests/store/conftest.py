from __future__ import annotations

from pathlib import Path

import pytest

from agentprof._config import StoreLocation, resolve_store_location


@pytest.fixture
def location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StoreLocation:
    """A store directory in ``tmp_path`` (not yet created), with AGENTPROF_DB cleared."""
    monkeypatch.delenv("AGENTPROF_DB", raising=False)
    monkeypatch.delenv("AGENTPROF_SPOOL", raising=False)
    return resolve_store_location(tmp_path / "store")


@pytest.fixture
def spool(location: StoreLocation) -> Path:
    return location.spool_dir
