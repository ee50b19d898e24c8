"""Configuration: where the store lives and what the project's ``[tool.agentprof]`` says.

Precedence, highest first: function arguments > ``AGENTPROF_*`` environment variables >
``[tool.agentprof]`` in ``pyproject.toml`` (or the top level of ``agentprof.toml``) > defaults.
Both the library and the CLI resolve the store through :func:`resolve_store_location`, so
``AGENTPROF_DB`` means the same thing everywhere.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentprof.exceptions import ConfigError

ENV_DB = "AGENTPROF_DB"
DEFAULT_DIR = ".agentprof"
DEFAULT_DB_FILE = "agentprof.duckdb"
SPOOL_DIR_NAME = "spool"


@dataclass(frozen=True, slots=True)
class StoreLocation:
    """Where the database and the spool of unread segments live.

    Attributes:
        url: SQLAlchemy URL of the database (``duckdb:///...`` by default).
        db_path: The database file for file-based stores, else ``None``.
        spool_dir: Directory of spool segments that writers append to.
        display: What to show a user when naming the store in a message.
    """

    url: str
    db_path: Path | None
    spool_dir: Path
    display: str


def resolve_store_location(db: str | os.PathLike[str] | None = None, *, cwd: Path | None = None) -> StoreLocation:
    """Resolve the store from an explicit value, ``AGENTPROF_DB``, or the default ``.agentprof/``.

    A value is either an SQLAlchemy URL (it contains ``://``) or a filesystem path. A path to a
    directory (existing, or new and without a file suffix) holds ``agentprof.duckdb`` and
    ``spool/``; a path with a suffix, or an existing file without one, is the database file itself
    and its spool is ``<file>.spool/`` beside it (so a file given by mistake is reported as the
    file it is, not as an empty store directory).

    Raises:
        ConfigError: The value is empty.
    """
    base = cwd or Path.cwd()
    raw = os.fspath(db) if db is not None else os.environ.get(ENV_DB) or None
    if raw is None:
        directory = base / DEFAULT_DIR
        path = directory / DEFAULT_DB_FILE
        return StoreLocation(f"duckdb:///{path}", path, directory / SPOOL_DIR_NAME, str(directory))
    raw = raw.strip()
    if not raw:
        raise ConfigError(f"{ENV_DB} is empty: set it to a directory, a .duckdb file or an SQLAlchemy URL")
    if "://" in raw:
        if raw.startswith("duckdb:///") and raw != "duckdb:///:memory:":
            path = Path(raw[len("duckdb:///") :].split("?", 1)[0])
            return StoreLocation(raw, path, path.with_name(path.name + ".spool"), str(path))
        spool = Path(os.environ.get("AGENTPROF_SPOOL") or base / DEFAULT_DIR / SPOOL_DIR_NAME)
        return StoreLocation(raw, None, spool, raw.split("@")[-1])
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = base / path
    if path.is_dir() or not (path.suffix or path.is_file()):
        db_path = path / DEFAULT_DB_FILE
        return StoreLocation(f"duckdb:///{db_path}", db_path, path / SPOOL_DIR_NAME, str(path))
    return StoreLocation(f"duckdb:///{path}", path, path.with_name(path.name + ".spool"), str(path))


def load_project_config(start: Path | None = None) -> tuple[dict[str, Any], Path | None]:
    """Return the ``[tool.agentprof]`` table and the file it came from.

    Searches ``start`` (default: the current directory) and its parents for ``agentprof.toml``
    (whose top level is the table) or a ``pyproject.toml`` with a ``[tool.agentprof]`` table.

    Raises:
        ConfigError: A file that should hold the configuration is not valid TOML.
    """
    directory = (start or Path.cwd()).resolve()
    for folder in (directory, *directory.parents):
        for name in ("agentprof.toml", "pyproject.toml"):
            candidate = folder / name
            if not candidate.is_file():
                continue
            try:
                data = tomllib.loads(candidate.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"{candidate} is not valid TOML ({exc}); fix or remove it") from exc
            if name == "agentprof.toml":
                return data, candidate
            table = data.get("tool", {}).get("agentprof")
            if isinstance(table, dict):
                return table, candidate
    return {}, None
