"""The ``agentprof`` command group; each command lives in its own module and is registered below."""

from __future__ import annotations

import click

from agentprof import __version__
from agentprof.cli._demo import demo
from agentprof.cli._doctor import doctor
from agentprof.cli._errors import AgentprofGroup
from agentprof.cli._import import import_
from agentprof.cli._report import report
from agentprof.cli._run import run
from agentprof.cli._serve import serve
from agentprof.cli._tasks import show, tasks
from agentprof.cli._whatif import whatif


@click.group(cls=AgentprofGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="agentprof")
def main() -> None:
    """Profile the cost of agentic AI workflows: where the money goes, and what to change."""


COMMANDS: list[click.Command] = [report, tasks, show, whatif, run, doctor, demo, serve, import_]

for command in COMMANDS:
    main.add_command(command)
