"""``agentprof run``: an unmodified program, its threads and child processes, profiled into one task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentprof.testserver import TestServer

AGENT = """
import os, sys, threading, multiprocessing, subprocess
import openai

def ask(text):
    client = openai.OpenAI(base_url=os.environ["TEST_OPENAI_URL"], api_key="test", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])

if __name__ == "__main__":
    ask("main [[reply:hello]]")
    worker = threading.Thread(target=ask, args=("from a thread",))
    worker.start(); worker.join()
    if "--children" in sys.argv:
        for method in ("fork", "spawn"):
            child = multiprocessing.get_context(method).Process(target=ask, args=(method,))
            child.start(); child.join()
        subprocess.run([sys.executable, "-c", "import agent; agent.ask('subprocess')"], check=True,
                       env=dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ["PYTHONPATH"]])))
    if "--fail" in sys.argv:
        raise RuntimeError("the agent gave up")
    print("agent done")
    sys.exit(int(os.environ.get("AGENT_EXIT", "0")))
"""


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer() as running:
        yield running


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "agent.py").write_text(AGENT)
    return tmp_path


def agentprof_cli(workdir: Path, server: TestServer, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = dict(os.environ, TEST_OPENAI_URL=server.openai_base_url, **env)
    environment.pop("AGENTPROF_DB", None)
    command = [sys.executable, "-c", "from agentprof.cli import main; main()", *args]
    return subprocess.run(command, cwd=workdir, env=environment, capture_output=True, text=True, timeout=120)


def report(workdir: Path, server: TestServer) -> dict[str, Any]:
    result = agentprof_cli(workdir, server, "report", "--db", str(workdir / "store"), "--format", "json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_a_script_its_threads_and_child_processes_are_one_task(workdir: Path, server: TestServer) -> None:
    result = agentprof_cli(workdir, server, "run", "--db", "store", "--", "python", "agent.py", "--children")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "agent done\n"  # the program's output is its own
    assert "agentprof: profiled into" in result.stderr
    data = report(workdir, server)
    # main, thread, fork child, spawn child, subprocess: every request the server saw, once.
    assert len(server.requests) == 5
    assert data["summary"]["model_calls"] == 5 and data["summary"]["tasks"] == 1
    assert [(step["task"], step["step"], step["model_calls"]) for step in data["steps"]] == [("agent", "(task)", 5)]
    truth = [exchange.usage or {} for exchange in server.requests]
    assert data["steps"][0]["input_tokens"] == sum(usage["prompt_tokens"] for usage in truth)
    assert data["steps"][0]["output_tokens"] == sum(usage["completion_tokens"] for usage in truth)
    assert data["summary"]["failed_tasks"] == 0


def test_exit_codes_pass_through_and_a_crash_fails_the_task(workdir: Path, server: TestServer) -> None:
    result = agentprof_cli(workdir, server, "run", "--db", "store", "agent.py", AGENT_EXIT="3")
    assert result.returncode == 3, result.stderr
    crashed = agentprof_cli(workdir, server, "run", "--db", "store", "--task-name", "crash", "agent.py", "--fail")
    assert crashed.returncode == 1
    assert "RuntimeError: the agent gave up" in crashed.stderr  # the program's own traceback, unchanged
    data = report(workdir, server)
    assert data["summary"]["tasks"] == 2 and data["summary"]["failed_tasks"] == 1
    assert sorted(step["task"] for step in data["steps"]) == ["agent", "crash"]


def test_module_form_and_the_programs_own_tasks(workdir: Path, server: TestServer) -> None:
    (workdir / "triage.py").write_text(
        textwrap.dedent(
            """
            import agentprof
            from agent import ask

            @agentprof.task(name="triage")
            def triage():
                ask("inside the program's task")

            triage()
            ask("outside it")
            """
        )
    )
    env = {"PYTHONPATH": str(workdir)}
    result = agentprof_cli(workdir, server, "run", "--db", "store", "--task-name", "nightly", "-m", "triage", **env)
    assert result.returncode == 0, result.stderr
    data = report(workdir, server)
    assert sorted((step["task"], step["model_calls"]) for step in data["steps"]) == [("nightly", 1), ("triage", 1)]
    bare = agentprof_cli(workdir, server, "run", "--db", "store2", "--no-task", "-m", "triage", **env)
    assert bare.returncode == 0, bare.stderr
    only_own = agentprof_cli(workdir, server, "report", "--db", str(workdir / "store2"), "--format", "json")
    steps = json.loads(only_own.stdout)["steps"]
    assert sorted((step["task"], step["model_calls"]) for step in steps) == [("(untracked)", 1), ("triage", 1)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to run"),
        (("missing.py",), "no such script: missing.py"),
        (("--", "no-such-program-here"), "command not found: no-such-program-here"),
    ],
)
def test_nothing_or_something_missing_to_run_is_one_clear_error(
    workdir: Path, server: TestServer, args: tuple[str, ...], message: str
) -> None:
    result = agentprof_cli(workdir, server, "run", *args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
