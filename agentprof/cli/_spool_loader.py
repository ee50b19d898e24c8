"""``agentprof serve``'s spool loader: what it receives goes into the store every minute.

serve writes spool segments only; before this loader nothing read them until someone ran
``agentprof report`` or ``doctor``. A collector left running for days then filled the disk with
segments (about 850 bytes a span, ten times what the same rows take in the store) and
made the next report wait for all of it (17 s per two million spans). The loader ingests the spool
at a fixed interval, whenever it holds finished segments.

Each load runs in a child process (:mod:`agentprof.cli._load_spool`), so serve never imports
DuckDB or SQLAlchemy and DuckDB's memory during a load is returned when the child exits; a load
that fails or is killed loses nothing (ingestion is exactly-once). A store locked by another
process (a report running) defers the load to the next interval after waiting a second; the
report, for its part, waits for a load that holds the lock (up to its own lock timeout). Loads,
rows, deferrals and failures are counted for serve's closing line, and a failure is printed once
per distinct message, so a broken store is visible while the spool keeps every span.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from agentprof._spool import SEGMENT_GLOB
from agentprof.cli._load_spool import LOADED, LOCKED

#: Consecutive deferrals (the store locked by another process) after which a warning is printed.
DEFERRALS_BEFORE_WARNING = 10

#: Seconds a load in progress may take to finish when serve stops (a load of one interval's spans
#: takes a second or two; a larger backlog is ended and left to the next reader of the store).
STOP_GRACE = 5.0

_CHILD_MODULE = "agentprof.cli._load_spool"  # its imports stay in the child


@dataclass(slots=True)
class LoaderStats:
    """What the loader has done since serve started.

    Attributes:
        loads: Child processes that ingested the spool.
        rows: Spool rows they read.
        bad_segments: Unreadable segments they moved to ``spool/bad/``.
        deferred: Tries skipped because another process held the store's lock.
        failures: Tries that failed for another reason (the spool kept the data).
    """

    loads: int = 0
    rows: int = 0
    bad_segments: int = 0
    deferred: int = 0
    failures: int = 0

    def summary(self) -> str:
        """A clause for serve's closing line (empty when the loader never ran)."""
        if not (self.loads or self.deferred or self.failures):
            return ""
        parts = [f"spool loaded into the store {self.loads} time(s) ({self.rows} rows)"]
        if self.deferred:
            parts.append(f"{self.deferred} load(s) deferred while the store was locked")
        if self.failures:
            parts.append(f"{self.failures} load(s) failed")
        if self.bad_segments:
            parts.append(f"{self.bad_segments} unreadable segment(s) set aside")
        return "; " + ", ".join(parts)


def _child_command() -> list[str]:
    """The child's command line: :mod:`agentprof.cli._load_spool` of the agentprof serve runs.

    ``-P`` keeps the directory serve was started in off ``sys.path`` (an ``agentprof/`` there, a
    checkout of another version, say, must not be imported), and this agentprof's home is appended
    last, for a serve imported from a checkout that is not installed. Appended, not put first on
    ``PYTHONPATH``: an installed agentprof's home is ``site-packages``, which must not come before
    the standard library.
    """
    import agentprof

    home = str(Path(agentprof.__file__).resolve().parent.parent)
    code = f"import sys; sys.path.append(sys.argv[1]); from {_CHILD_MODULE} import main; sys.exit(main())"
    return [sys.executable, "-P", "-c", code, home]


class SpoolLoader:
    """Ingests ``spool_dir`` into the store every ``every`` seconds in a child process (see the module docstring)."""

    def __init__(self, db: str | None, spool_dir: Path, every: float, *, warn: Callable[[str], None]) -> None:
        """Prepare a loader; nothing runs before :meth:`start`.

        Args:
            db: The store as serve's ``--db`` named it (``None``: ``AGENTPROF_DB`` or the default),
                passed on to the child as ``AGENTPROF_DB`` (not as an argument: a URL may carry a
                password, and arguments show in ``ps``); it resolves it from the same directory.
            spool_dir: The spool serve writes to (checked for segments before starting a child).
            every: Seconds between tries.
            warn: Prints one warning line (called from the loader's thread).
        """
        self._command = _child_command()
        self._environment = {**os.environ, "AGENTPROF_DB": db} if db else None
        self._spool_dir = spool_dir
        self._every = every
        self._warn = warn
        self._stats = LoaderStats()
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._child: subprocess.Popen[str] | None = None
        self._last_failure: str | None = None
        self._deferred_in_a_row = 0
        self._thread = threading.Thread(target=self._run, name="agentprof-spool-loader", daemon=True)

    @property
    def stats(self) -> LoaderStats:
        """The counts so far (a copy)."""
        with self._lock:
            return replace(self._stats)

    def start(self) -> SpoolLoader:
        """Start the loader's thread; the first try is one interval from now."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop trying; a load in progress gets :data:`STOP_GRACE` seconds, then is ended (harmlessly)."""
        self._stopping.set()
        with self._lock:
            child = self._child
        if child is not None:
            try:
                child.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                child.terminate()  # the next reader of the store loads what it did not commit
        if self._thread.is_alive():
            self._thread.join()

    def load_now(self) -> None:
        """Run one try now, on the caller's thread (what each interval does)."""
        if not self._has_segments():
            return
        with self._lock:
            if self._stopping.is_set():
                return
            # A session of its own: a Ctrl-C in serve's terminal stops serve, which ends the child.
            child = self._child = subprocess.Popen(
                self._command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=self._environment,
                start_new_session=True,
            )
        out, err = child.communicate()
        with self._lock:
            self._child = None
            self._record(child.returncode, out, err)

    def _run(self) -> None:
        while not self._stopping.wait(self._every):
            try:
                self.load_now()
            except Exception as exc:  # a loader bug must not end the loading, nor serve
                with self._lock:
                    self._child = None
                    self._fail(f"internal error: {type(exc).__name__}: {exc}")

    def _has_segments(self) -> bool:
        try:
            return next(self._spool_dir.glob(SEGMENT_GLOB), None) is not None
        except OSError:
            return False

    def _record(self, returncode: int, out: str, err: str) -> None:
        message = (err.strip().splitlines() or [f"exit code {returncode}"])[-1]
        if returncode == LOADED:
            counts = json.loads(out.strip().splitlines()[-1])
            self._stats.loads += 1
            self._stats.rows += counts["rows"]
            self._stats.bad_segments += counts["bad"]
            self._deferred_in_a_row = 0
            self._last_failure = None
        elif returncode == LOCKED:
            self._stats.deferred += 1
            self._deferred_in_a_row += 1
            if self._deferred_in_a_row == DEFERRALS_BEFORE_WARNING:
                self._warn(f"the spool could not be loaded {DEFERRALS_BEFORE_WARNING} times in a row: {message}")
        elif not self._stopping.is_set():  # a child ended by stop() is not a failure
            self._fail(message)

    def _fail(self, message: str) -> None:
        """Count a failed try, and print ``message`` unless the previous failure said the same."""
        self._stats.failures += 1
        if message != self._last_failure:
            self._last_failure = message
            self._warn(
                f"could not load the spool into the store: {message} "
                f"(the spool keeps every span; next try in {self._every:g} s)"
            )
