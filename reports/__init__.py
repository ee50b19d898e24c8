"""Report building and rendering for agentprof."""
