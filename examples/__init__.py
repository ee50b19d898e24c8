"""Runnable example agents (installed as ``agentprof.examples`` so ``agentprof demo`` can run them)."""
