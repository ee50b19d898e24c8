"""``agentprof.reports`` imports each module when one of its names is first used, not all at once."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import agentprof.reports as reports


def test_every_public_name_resolves_to_the_object_in_its_module() -> None:
    assert sorted(reports._HOMES) == sorted(reports.__all__)
    for name, home in reports._HOMES.items():
        module = importlib.import_module(f"agentprof.reports.{home}")
        assert getattr(reports, name) is getattr(module, name), name


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'build_reports'"):
        reports.build_reports  # noqa: B018 - the attribute access is the test


def _modules_loaded_by(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(output.split())


def test_doctors_helper_does_not_import_the_report_builder_or_the_rules() -> None:
    loaded = _modules_loaded_by("import agentprof.reports._cut")
    assert "agentprof.reports._cut" in loaded
    assert not loaded & {"agentprof.reports._build", "agentprof.reports.rules._engine", "agentprof.reports._text"}


def test_the_task_list_does_not_import_the_rules() -> None:
    loaded = _modules_loaded_by("from agentprof.reports import TaskList, render_task_list, task_entry")
    assert "agentprof.reports._task_text" in loaded
    assert "agentprof.reports.rules._engine" not in loaded
