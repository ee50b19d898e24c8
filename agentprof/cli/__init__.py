"""The agentprof command line (click + rich): ``agentprof report | tasks | show``.

Importing this package loads click only; each command imports the store, analytics and
rich when it runs, so ``agentprof --help`` stays fast.
"""

from __future__ import annotations

from agentprof.cli._main import main

__all__ = ["main"]
