"""``agentprof run``: profile an unmodified program, like ``coverage run`` or ``opentelemetry-instrument``.

The program runs as a child process with ``agentprof/_bootstrap`` first on ``PYTHONPATH`` and
``AGENTPROF_RUN=1``: its ``sitecustomize`` instruments every supported SDK at start-up and makes
the whole run one task (see :mod:`agentprof._autorun`). Child processes inherit the environment
and are profiled into the same store and task. The program's output, input, exit code and
signals are its own; agentprof adds one line on stderr at the end saying where the data went.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import click

from agentprof.cli._options import db_option

BOOTSTRAP_DIR = Path(__file__).resolve().parent.parent / "_bootstrap"


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("-m", "module", metavar="MODULE", help="Run a library module as a script, like python -m.")
@click.option("--task-name", metavar="NAME", help="Name of the run's task (default: the script or module name).")
@click.option("--no-task", is_flag=True, help="Do not wrap the run in a task: only the program's own tasks count.")
@click.option("--capture-content", is_flag=True, help="Store prompt and completion text (off by default).")
@db_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def run(
    module: str | None,
    task_name: str | None,
    no_task: bool,
    capture_content: bool,
    db: str | None,
    command: tuple[str, ...],
) -> None:
    """Profile an unmodified program, its threads and child processes, as one task.

    COMMAND is python script.py ARGS or script.py ARGS; or give -m MODULE ARGS. For example:

    agentprof run -- python agent.py --tickets 20

    agentprof run --task-name nightly-eval -m evals.run
    """
    argv = _program(module, command)
    environment = dict(os.environ)
    paths = [str(BOOTSTRAP_DIR), *filter(None, environment.get("PYTHONPATH", "").split(os.pathsep))]
    environment["PYTHONPATH"] = os.pathsep.join(paths)
    environment["AGENTPROF_RUN"] = "1"
    environment.pop("AGENTPROF_RUN_PARENT", None)  # a run inside a profiled program is its own run
    environment["AGENTPROF_RUN_TASK"] = "" if no_task else (task_name or _default_task_name(module, argv))
    if db:
        environment["AGENTPROF_DB"] = db
    if capture_content:
        environment["AGENTPROF_CAPTURE_CONTENT"] = "1"
    code = _run_child(argv, environment)
    from agentprof._config import resolve_store_location

    where = resolve_store_location(environment.get("AGENTPROF_DB")).display
    click.echo(f"agentprof: profiled into {where}; see it with `agentprof report --db {where}`", err=True)
    sys.exit(code)


def _program(module: str | None, command: tuple[str, ...]) -> list[str]:
    """The argv to start: ``python -m MODULE ...``, ``python script.py ...`` or the command as given."""
    if module:
        return [sys.executable, "-m", module, *command]
    if not command:
        raise click.UsageError("nothing to run: give a command (agentprof run -- python agent.py) or -m MODULE")
    first = command[0]
    if first.endswith(".py"):
        if not Path(first).is_file():
            raise click.UsageError(f"no such script: {first}")
        return [sys.executable, *command]
    if shutil.which(first) is None and not Path(first).is_file():
        raise click.UsageError(f"command not found: {first}")
    return list(command)


def _default_task_name(module: str | None, argv: list[str]) -> str:
    if module:
        return module
    for part in argv[1:] if Path(argv[0]).name.startswith("python") else argv:
        if not part.startswith("-"):
            return Path(part).stem or part
    return Path(argv[0]).name


def _run_child(argv: list[str], environment: dict[str, str]) -> int:
    """Run the program in the foreground; Ctrl-C goes to it (same process group), not to us."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        try:
            completed = subprocess.run(argv, env=environment, check=False)
        except OSError as exc:
            raise click.ClickException(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
    finally:
        signal.signal(signal.SIGINT, previous)
    code = completed.returncode
    return 128 - code if code < 0 else code  # killed by a signal: the shell's convention
