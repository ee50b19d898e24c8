"""Instrumentation of provider SDKs (openai, anthropic) for agentprof."""
