"""What recording adds to each event of a stream, without HTTP: the proxies' chunk path alone.

``overhead.py`` measures the streaming target end to end, where one chunk costs 30-170 µs of
SDK and HTTP work and the machine's noise is larger than what we add. This script isolates the
part that runs per chunk: it records one real stream per SDK from the local test server (the
SDK's own event objects), repeats its content events to ``--events`` per stream, and iterates
that list through a plain iterator (``bare``) and through the same iterator wrapped by
agentprof's stream proxy with the provider's recording state (``recorded``: one span opened and
finished per stream, amortised over its events). Rounds alternate the order; medians are
printed, in nanoseconds per event.

    python benchmarks/stream_events.py                 # --events 1000 --streams 200 --rounds 15
    python benchmarks/stream_events.py --async         # the same through async for
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import openai

import agentprof
from agentprof._calls import open_call
from agentprof.integrations._streams import StreamState, proxy_stream
from agentprof.integrations.anthropic import MessageStreamState
from agentprof.integrations.openai import ChatStreamState
from agentprof.testserver import TestServer


class _Events:
    """A bare iterator over recorded events, standing in for the SDK's ``Stream``."""

    __slots__ = ("_events",)

    def __init__(self, events: list[Any]) -> None:
        self._events = iter(events)

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        return self._events.__next__()

    def close(self) -> None:
        """Nothing to close."""


class _AsyncEvents:
    """The same, standing in for the SDK's ``AsyncStream`` (``--async``)."""

    __slots__ = ("_events",)

    def __init__(self, events: list[Any]) -> None:
        self._events = iter(events)

    def __aiter__(self) -> _AsyncEvents:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._events)
        except StopIteration:
            raise StopAsyncIteration from None

    async def close(self) -> None:
        """Nothing to close."""


def recorded_streams(events: int) -> dict[str, tuple[list[Any], str, Callable[[], StreamState]]]:
    """Per SDK: one real stream's events with its content events repeated to about ``events``."""
    with TestServer(prompt_cache=False) as server:
        oa = openai.OpenAI(base_url=server.openai_base_url, api_key="bench", max_retries=0)
        an = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="bench", max_retries=0)
        prompt = [{"role": "user", "content": "[[chunks:20]] hello"}]
        chat = list(
            oa.chat.completions.create(
                model="gpt-4o-mini",
                messages=prompt,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        message = list(an.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=prompt, stream=True))  # type: ignore[arg-type]
    chat_content = [chunk for chunk in chat if chunk.choices and chunk.choices[0].delta.content]
    chat_events = chat[:1] + chat_content * (events // len(chat_content)) + chat[-2:]
    deltas = [event for event in message if event.type == "content_block_delta"]
    message_events = message[:2] + deltas * (events // len(deltas)) + message[-3:]
    return {
        "openai chat": (chat_events, "openai", lambda: ChatStreamState(expect_usage=True)),
        "anthropic messages": (message_events, "anthropic", MessageStreamState),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000, help="events per stream (about)")
    parser.add_argument("--streams", type=int, default=200, help="streams per variant and round")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--async", dest="use_async", action="store_true", help="async streams, through async for")
    args = parser.parse_args()
    streams = recorded_streams(args.events)
    with tempfile.TemporaryDirectory(prefix="agentprof-stream-events-") as store:
        agentprof.configure(db=store, schedule_delay_millis=3_600_000, max_queue_size=100_000)

        def bare(events: list[Any], provider: str, state: Callable[[], StreamState]) -> None:
            for _ in _Events(events):
                pass

        def recorded(events: list[Any], provider: str, state: Callable[[], StreamState]) -> None:
            call = open_call(provider, "bench-model", "chat", True, None, None, None, None)
            for _ in proxy_stream(_Events(events), call, state(), is_async=False):
                pass

        async def bare_async(events: list[Any]) -> None:
            async for _ in _AsyncEvents(events):
                pass

        async def recorded_async(events: list[Any], provider: str, state: StreamState) -> None:
            call = open_call(provider, "bench-model", "chat", True, None, None, None, None)
            async for _ in proxy_stream(_AsyncEvents(events), call, state, is_async=True):
                pass

        if args.use_async:  # one event loop per stream: its start-up is the same for both variants

            def bare(events: list[Any], provider: str, state: Callable[[], StreamState]) -> None:
                asyncio.run(bare_async(events))

            def recorded(events: list[Any], provider: str, state: Callable[[], StreamState]) -> None:
                asyncio.run(recorded_async(events, provider, state()))

        variants = {"bare": bare, "recorded": recorded}
        figures: dict[tuple[str, str], list[float]] = {}
        for round_ in range(args.rounds):
            for name, (events, provider, state) in streams.items():
                order = list(variants) if round_ % 2 == 0 else list(reversed(variants))
                for variant in order:
                    run = variants[variant]
                    start = time.perf_counter_ns()
                    for _ in range(args.streams):
                        run(events, provider, state)
                    elapsed = time.perf_counter_ns() - start
                    figures.setdefault((name, variant), []).append(elapsed / args.streams / len(events))
            agentprof.flush()
        agentprof.shutdown()
    print(f"{args.rounds} rounds x {args.streams} streams per variant; ns per event, median over rounds")
    for name, (events, _, _) in streams.items():
        bare_ns = statistics.median(figures[(name, "bare")])
        paired = [r - b for r, b in zip(figures[(name, "recorded")], figures[(name, "bare")], strict=True)]
        print(
            f"  {name:20s} {len(events)} events: bare {bare_ns:6.0f}   recorded adds {statistics.median(paired):6.0f}"
            f"   (per round: {min(paired):.0f}..{max(paired):.0f})"
        )


if __name__ == "__main__":
    main()
