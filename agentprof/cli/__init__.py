"""The agentprof command line (click + rich)."""
