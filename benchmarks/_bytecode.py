"""Compile agentprof's modules to bytecode before a start-up timing, as installing it would.

``pip install agentprof`` writes a ``.pyc`` for every module, so an installed agentprof never
compiles its source at import. A checkout installed in editable mode only gets them when Python
may write them, and ``PYTHONDONTWRITEBYTECODE=1`` (set on the machines these figures come from)
forbids that: then every fresh ``agentprof report`` compiles ~100 modules from source, about a
quarter of a second the users of a wheel never pay (measured 2026-12-03: a fresh report of 1,000
calls, 1.44 s without the ``.pyc`` files, 1.17 s with them). Python still reads ``.pyc`` files
under that variable, so compiling once here is enough.

Not a benchmark itself: ``startup.py``, ``report.py`` and ``whatif.py`` call :func:`compile_like_an_install`.
"""

from __future__ import annotations

import compileall
import importlib.util
from pathlib import Path

#: Every directory an installed agentprof's modules come from (see ``[tool.setuptools.package-dir]``).
PACKAGES = ("agentprof", "agentprof.reports", "agentprof.integrations", "agentprof.examples")


def compile_like_an_install() -> None:
    """Write the ``.pyc`` files of every agentprof module that lacks a current one."""
    for name in PACKAGES:
        spec = importlib.util.find_spec(name)  # the package's directories, without running its __init__
        if spec is None or spec.submodule_search_locations is None:
            raise SystemExit(f"{name} is not installed here: pip install -e . first")
        for directory in map(Path, spec.submodule_search_locations):
            if not compileall.compile_dir(directory, quiet=1):
                raise SystemExit(f"could not compile {directory}: fix the error above first")
