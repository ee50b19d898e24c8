"""agentprof: profile the cost of agentic AI workflows."""

from __future__ import annotations

__version__ = "0.1.0"
