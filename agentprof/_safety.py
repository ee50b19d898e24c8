"""The "never break the agent" guard: internal failures are counted, logged once, and swallowed.

Everything agentprof runs inside a user's call goes through :func:`internal_error` when it
fails. Under pytest (and only there) the error is re-raised so bugs surface in tests, never in
users' programs; set ``AGENTPROF_RAISE_INTERNAL_ERRORS=0`` to turn that off in a test suite
that profiles its own agents. Operational failures (a full disk, a dropped batch) are not
bugs: they are counted with :func:`count` and shown by ``agentprof doctor``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import Counter

logger = logging.getLogger("agentprof")

_lock = threading.Lock()
_counters: Counter[str] = Counter()
_logged: set[str] = set()


def count(name: str, amount: int = 1) -> None:
    """Add ``amount`` to the health counter ``name`` (thread-safe)."""
    with _lock:
        _counters[name] += amount


def counters() -> dict[str, int]:
    """Return a snapshot of every health counter of this process."""
    with _lock:
        return dict(_counters)


def counters_since(baseline: dict[str, int]) -> dict[str, int]:
    """What each counter gained since ``baseline`` (a snapshot from :func:`counters`).

    A runtime reports its own share: a process that configures agentprof again (another store,
    say) must not report the first runtime's losses as the second's. A counter below its
    baseline was reset meanwhile (tests), so all of it is new.
    """
    with _lock:
        now = dict(_counters)
    gained: dict[str, int] = {}
    for name, value in now.items():
        before = baseline.get(name, 0)
        delta = value - before if value >= before else value
        if delta:
            gained[name] = delta
    return gained


def reset_counters() -> None:
    """Forget all counters (tests; a runtime reports only what it added, see :func:`counters_since`)."""
    with _lock:
        _counters.clear()
        _logged.clear()


def _first_time(where: str) -> bool:
    """Whether nothing was logged for ``where`` yet in this process (and mark it logged)."""
    with _lock:
        first = where not in _logged
        _logged.add(where)
    return first


def warn_once(where: str, message: str, *args: object) -> None:
    """Log an operational failure at ``where`` as a warning the first time only (later ones are counted elsewhere).

    For failures outside agentprof's control that repeat (a collector that stays down): the user
    learns of it once, and ``agentprof doctor`` has the counts, instead of a line per attempt.
    """
    if _first_time(where):
        logger.warning(message, *args)


def _should_reraise() -> bool:
    if os.environ.get("AGENTPROF_RAISE_INTERNAL_ERRORS", "") == "0":
        return False
    return "PYTEST_CURRENT_TEST" in os.environ and "_pytest" in sys.modules


def internal_error(where: str, exc: BaseException) -> None:
    """Record a bug inside agentprof at ``where``; re-raise only under pytest.

    Call this from an ``except Exception`` block. The first failure at each place is logged
    with its traceback; later ones are only counted, so a broken wrapper cannot flood logs.
    """
    count("internal_errors")
    count(f"internal_errors.{where}")
    if _first_time(where):
        logger.warning(
            "agentprof: internal error in %s (%r). Your code is unaffected; profiling data may be "
            "incomplete. Run `agentprof doctor` for details.",
            where,
            exc,
            exc_info=exc,
        )
    if _should_reraise():
        raise exc
