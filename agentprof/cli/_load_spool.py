"""Load the spool into the store once, as a child process of ``agentprof serve``.

:func:`main` (what serve's :class:`~agentprof.cli._spool_loader.SpoolLoader` runs, and ``python -m
agentprof.cli._load_spool`` by hand) opens the store (``AGENTPROF_DB``, else the project's
default), ingests every finished segment exactly once and exits. It is a process of its own so
that DuckDB's memory during a load, and any failure of it, stay out of the long-running receiver;
a load killed half-way is harmless (see :mod:`agentprof.store._ingest`).

The parent reads the outcome from the exit code and one line:

- :data:`LOADED` (0): stdout is ``{"segments": N, "rows": N, "skipped": N, "bad": N}``;
- :data:`LOCKED` (75, ``EX_TEMPFAIL``): another process held the file past :data:`LOCK_WAIT`
  seconds (a report running, say), so nothing was done and a later try will do it;
- anything else: the last line of stderr says what is wrong (a foreign or corrupt file, a newer
  agentprof's store, a full disk).
"""

from __future__ import annotations

import json
import sys

LOADED = 0
LOCKED = 75
FAILED = 1

#: Seconds to wait for a lock held by another process before deferring to the next try; short,
#: because a reader holding it is a person waiting for a report, and serve tries again anyway.
LOCK_WAIT = 1.0


def main() -> int:
    """Ingest the spool of the store ``AGENTPROF_DB`` names (or the default store); see the module docstring."""
    from sqlalchemy.exc import SQLAlchemyError

    from agentprof.cli._errors import one_line
    from agentprof.exceptions import AgentprofError, StoreLockedError
    from agentprof.store import open_store

    try:
        with open_store(None, ingest=False, lock_timeout=LOCK_WAIT) as store:
            result = store.ingest_spool()
    except StoreLockedError as exc:
        print(one_line(exc), file=sys.stderr)
        return LOCKED
    except (AgentprofError, SQLAlchemyError, OSError) as exc:
        print(one_line(exc), file=sys.stderr)
        return FAILED
    counts = {
        "segments": result.segments,
        "rows": result.rows,
        "skipped": result.skipped_segments,
        "bad": result.bad_segments,
    }
    print(json.dumps(counts))
    return LOADED


if __name__ == "__main__":
    sys.exit(main())
