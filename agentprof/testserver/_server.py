"""The public test server object: lifecycle, URLs, scripting queue and recorded exchanges."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Self

from agentprof.testserver._cache import PromptCacheSimulator
from agentprof.testserver._exchange import RecordedExchange
from agentprof.testserver._handler import ModelAPIServer
from agentprof.testserver._script import ScriptedReply


class TestServer:
    """A local OpenAI + Anthropic API server for tests, benchmarks and ``agentprof demo``.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`); it serves from a
    daemon thread. Point ``openai.OpenAI(base_url=server.openai_base_url, api_key="test")``
    or ``anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test")`` at it.

    Args:
        host: Interface to bind.
        port: Port to bind; 0 picks a free one.
        prompt_cache: With False, nothing is ever cached (all cache counters are 0).
        clock: Monotonic seconds, for cache TTLs and :attr:`RecordedExchange.time`; inject a fake
            to expire cache entries without sleeping.
        anthropic_min_cacheable_tokens: Per-model-prefix overrides of Anthropic's minimum
            cacheable prompt length.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        prompt_cache: bool = True,
        clock: Callable[[], float] = time.monotonic,
        anthropic_min_cacheable_tokens: Mapping[str, int] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.clock = clock
        self.prompt_cache = PromptCacheSimulator(
            clock, enabled=prompt_cache, anthropic_min_tokens=anthropic_min_cacheable_tokens
        )
        self._exchanges: list[RecordedExchange] = []
        self._scripts: deque[ScriptedReply] = deque()
        self._lock = threading.Lock()
        self._sequence = itertools.count(1)
        self._httpd: ModelAPIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind the port and start serving in a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("TestServer is already running")
        self._httpd = ModelAPIServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, name="agentprof-testserver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open keep-alive connections and release the port."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        with httpd.connections_lock:
            connections = list(httpd.connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client
        deadline = time.monotonic() + 2.0
        while httpd.connections and time.monotonic() < deadline:
            time.sleep(0.005)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` of the running server."""
        if self._httpd is None:
            raise RuntimeError("TestServer is not running; call start() or use it as a context manager")
        return f"http://{self.host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url`` for the OpenAI SDK (``url + "/v1"``)."""
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        """``base_url`` for the Anthropic SDK (the SDK adds ``/v1`` itself)."""
        return self.url

    @property
    def requests(self) -> list[RecordedExchange]:
        """A copy of every model request answered so far, in the order they finished."""
        with self._lock:
            return list(self._exchanges)

    def reset(self) -> None:
        """Forget recorded exchanges, queued replies and the prompt cache: a fresh server."""
        with self._lock:
            self._exchanges.clear()
            self._scripts.clear()
        self.prompt_cache.clear()

    def enqueue(self, *replies: ScriptedReply) -> None:
        """Answer the next model requests with ``replies``, in order, ignoring their directives."""
        with self._lock:
            self._scripts.extend(replies)

    def _take_script(self) -> ScriptedReply | None:
        with self._lock:
            return self._scripts.popleft() if self._scripts else None

    def _next_sequence(self) -> int:
        with self._lock:
            return next(self._sequence)

    def _record(self, exchange: RecordedExchange) -> None:
        with self._lock:
            self._exchanges.append(exchange)
