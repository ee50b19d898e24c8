"""A local server speaking the OpenAI and Anthropic HTTP APIs, for tests and the demo."""
