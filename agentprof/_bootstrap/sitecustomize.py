"""Start-up hook of ``agentprof run``: profile this Python process, then run any other sitecustomize.

``agentprof run`` puts this directory first on ``PYTHONPATH`` and sets ``AGENTPROF_RUN=1``;
the environment is inherited, so child Python processes start profiled too. Nothing here may
stop the program from starting.
"""

import importlib.machinery
import importlib.util
import os
import sys


def _profile() -> None:
    if os.environ.get("AGENTPROF_RUN") != "1":
        return
    try:
        from agentprof._autorun import bootstrap

        bootstrap()
    except Exception as exc:  # agentprof missing or broken in this interpreter: run the program anyway
        print(f"agentprof: not profiling this process ({type(exc).__name__}: {exc})", file=sys.stderr)


def _chain() -> None:
    """Run the ``sitecustomize`` this one shadows, if the environment has one."""
    here = os.path.dirname(os.path.abspath(__file__))
    path = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None or spec.origin == __file__:
        return
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # what Python itself does with a failing sitecustomize
        print(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{type(exc).__name__}: {exc}", file=sys.stderr)


_profile()
_chain()
