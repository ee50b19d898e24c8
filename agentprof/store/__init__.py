"""The local store: DuckDB (or any SQLAlchemy URL) fed from per-process spool segments."""
