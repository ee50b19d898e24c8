"""``python -m agentprof.testserver``: run the test server in the foreground."""

from __future__ import annotations

import argparse
import threading

from agentprof.testserver._server import TestServer


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted, printing the URL so scripts and people can find it."""
    parser = argparse.ArgumentParser(
        prog="python -m agentprof.testserver", description="Local OpenAI + Anthropic API server for tests."
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument("--no-prompt-cache", action="store_true", help="disable the prompt-cache simulation")
    args = parser.parse_args(argv)
    with TestServer(args.host, args.port, prompt_cache=not args.no_prompt_cache) as server:
        print(f"agentprof test server listening on {server.url}", flush=True)
        print(f"  OpenAI base_url:    {server.openai_base_url}", flush=True)
        print(f"  Anthropic base_url: {server.anthropic_base_url}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
