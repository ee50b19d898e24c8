"""Zero-code profiling: what ``agentprof run`` starts inside every Python process of the program.

``agentprof run`` launches the program with ``agentprof/_bootstrap`` first on ``PYTHONPATH``;
its ``sitecustomize`` calls :func:`bootstrap` at interpreter start-up when ``AGENTPROF_RUN=1``
(then hands over to any other ``sitecustomize``). The environment is inherited, so every Python
child (``subprocess``, ``multiprocessing`` with spawn or forkserver) runs it too; forked
children inherit the parent's state and only need flushing at exit.

What the bootstrap does:

* ``agentprof.instrument()``: every supported SDK the program imports is recorded (patched when
  it is imported, so unused ones cost nothing), into the store named by ``AGENTPROF_DB`` (set
  by ``agentprof run --db``, else the usual default);
* the top-level process opens the run's task (``AGENTPROF_RUN_TASK``; none when empty) and
  makes it the *process frame*: code outside any task, in any thread, belongs to it. Its id
  goes to ``AGENTPROF_RUN_PARENT``, so child processes attach their calls to the same task
  instead of opening their own;
* the task ends at interpreter exit, failed if the program died of an uncaught exception (or
  ``agentprof.set_outcome(False)`` said so), and everything is flushed. A forked
  ``multiprocessing`` child exits through ``os._exit``, which skips ``atexit``: a
  ``multiprocessing`` finaliser flushes it instead.

Nothing here may break the program: every failure is counted and swallowed.
"""

from __future__ import annotations

import atexit
import os
import sys
from types import TracebackType
from typing import Any

from agentprof import _safety

ENV_RUN = "AGENTPROF_RUN"
ENV_TASK = "AGENTPROF_RUN_TASK"
ENV_PARENT = "AGENTPROF_RUN_PARENT"

_uncaught: list[tuple[type[BaseException], BaseException, TracebackType | None]] = []


def bootstrap() -> None:
    """Instrument this process and join (or open) the run's task; never raises."""
    try:
        _start()
    except Exception as exc:
        _safety.internal_error("run.bootstrap", exc)


def _start() -> None:
    import agentprof
    from agentprof import _context

    agentprof.instrument()
    _flush_forked_children_at_exit()
    parent = os.environ.get(ENV_PARENT)
    if parent:
        _context.set_process_frame(_attached_frame(parent))
        return
    name = os.environ.get(ENV_TASK, "")
    if not name:
        return
    scope = agentprof.task(name)
    scope.__enter__()
    frame = _context.current_frame.get()
    if frame is None or frame.task_id is None:
        return
    _context.set_process_frame(frame)
    os.environ[ENV_PARENT] = f"{frame.trace_id:032x}:{frame.task_id:016x}:{name}"
    previous_hook = sys.excepthook

    def remember_uncaught(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        _uncaught.append((kind, error, tb))
        previous_hook(kind, error, tb)

    sys.excepthook = remember_uncaught
    # Registered after configure's own shutdown hook, so it runs first (atexit is LIFO).
    atexit.register(_end_task, scope, os.getpid())


def _attached_frame(parent: str) -> Any:
    """The run's task, as seen from a child process (no span of its own: the parent ends it)."""
    from agentprof import _semconv as sc
    from agentprof._context import Frame, TaskState

    trace_hex, task_hex, name = parent.split(":", 2)
    task_id = int(task_hex, 16)
    return Frame(int(trace_hex, 16), task_id, task_id, name, sc.TASK_LEVEL_STEP, None, None, TaskState())


def _end_task(scope: Any, owner_pid: int) -> None:
    from agentprof import _context

    if os.getpid() != owner_pid:
        return  # a forked child inherited this hook: only the process that opened the task ends it
    try:
        _context.set_process_frame(None)
        if _uncaught:
            scope.__exit__(*_uncaught[-1])
        else:
            scope.__exit__(None, None, None)
    except Exception as exc:
        _safety.internal_error("run.end_task", exc)


class _ForkAnchor:
    """The object ``multiprocessing.util.register_after_fork`` keys its callback on (kept alive here)."""


_FORK_ANCHOR = _ForkAnchor()


def _flush_forked_children_at_exit() -> None:
    """Flush forked ``multiprocessing`` children through its exit hook: ``os._exit`` skips atexit.

    The finaliser must be registered after ``Process._bootstrap`` clears the inherited registry,
    which is what ``register_after_fork`` callbacks are for.
    """
    from multiprocessing import util

    def register_flush(_: object) -> None:
        try:
            from agentprof import _runtime

            util.Finalize(None, _runtime.shutdown, exitpriority=-100)
        except Exception as exc:
            _safety.internal_error("run.fork", exc)

    util.register_after_fork(_FORK_ANCHOR, register_flush)


__all__ = ["ENV_PARENT", "ENV_RUN", "ENV_TASK", "bootstrap"]
