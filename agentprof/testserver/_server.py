"""The HTTP server: routing, timing, streaming and the recorded ground truth.

Built on :class:`http.server.ThreadingHTTPServer` so it needs nothing beyond the
standard library. Two details keep timings honest: Nagle's algorithm is off and
every non-streaming response (status line, headers and body) goes out in ONE write,
otherwise each answer waits ~40 ms for a delayed ACK. Streams use chunked transfer
encoding, one chunk per SSE event, so connections stay in the SDKs' keep-alive pools.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from agentprof.testserver._anthropic import AnthropicProvider
from agentprof.testserver._cache import CacheRequestError, PromptCacheSimulator
from agentprof.testserver._openai import OpenAIProvider
from agentprof.testserver._provider import ParsedRequest, Provider, RequestError, SseEvent
from agentprof.testserver._script import ScriptedReply, ScriptError, default_reply_text, parse_directives, plan_reply

_OPENAI = OpenAIProvider()
_ANTHROPIC = AnthropicProvider()
_MODEL_ROUTES: Mapping[str, Provider] = {
    "/v1/chat/completions": _OPENAI,
    "/chat/completions": _OPENAI,
    "/v1/messages": _ANTHROPIC,
}


@dataclasses.dataclass(frozen=True)
class RecordedExchange:
    """One model request as the server saw and answered it: the ground truth for tests.

    Attributes:
        api: ``"openai"`` or ``"anthropic"``.
        path: Request path, e.g. ``/v1/chat/completions``.
        model: Requested model, or None if the body had none.
        stream: Whether the client asked for a stream.
        status: HTTP status sent.
        usage: The usage object exactly as sent (provider's JSON shape; for an Anthropic stream the
            ``message_start`` usage updated by ``message_delta``), or None for errors and for streams
            that carried no usage.
        request_body: The parsed JSON body (None if it was not JSON).
        output_text: Reply text sent (for an interrupted stream, the part that was sent).
        time: The server clock when the request arrived.
    """

    api: str
    path: str
    model: str | None
    stream: bool
    status: int
    usage: dict[str, Any] | None
    request_body: Any
    output_text: str
    time: float


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], owner: TestServer) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Stay quiet: tests and benchmarks don't want an access log on stderr."""

    # --- plumbing -----------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _head(self, status: int, headers: Mapping[str, str]) -> bytes:
        lines = [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ''}",
            f"Date: {self.date_time_string()}",
            "Server: agentprof-testserver",
            *(f"{name}: {value}" for name, value in headers.items()),
            "Connection: close" if self.close_connection else "Connection: keep-alive",
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send_json(self, status: int, body: Any, headers: Mapping[str, str] | None = None) -> None:
        payload = json.dumps(body).encode()
        all_headers = {"Content-Type": "application/json", "Content-Length": str(len(payload)), **(headers or {})}
        self.wfile.write(self._head(status, all_headers) + payload)

    def _not_found(self, path: str) -> None:
        # Both SDKs read this shape: OpenAI looks at "error", Anthropic at "error.type".
        error = {"type": "not_found_error", "message": f"Unknown path {path}", "code": "unknown_url"}
        self._send_json(404, {"type": "error", "error": error})

    # --- routes -------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - the base class's naming
        """Health check and the recorded exchanges for multi-process tests."""
        path = urlsplit(self.path).path
        if path == "/health":
            self._send_json(200, {"status": "ok"})
        elif path == "/_agentprof/exchanges":
            self._send_json(200, [dataclasses.asdict(exchange) for exchange in self.server.owner.requests])
        else:
            self._not_found(path)

    def do_POST(self) -> None:  # noqa: N802 - the base class's naming
        """Model calls, token counting and the reset endpoint."""
        raw = self._read_body()
        path = urlsplit(self.path).path
        if path == "/_agentprof/reset":
            self.server.owner.reset()
            self._send_json(200, {"status": "ok"})
        elif path == "/v1/messages/count_tokens":
            try:
                self._send_json(200, _ANTHROPIC.count_tokens(json.loads(raw)))
            except (ValueError, RequestError) as exc:
                self._send_json(400, _ANTHROPIC.error_body(400, str(exc)))
        elif path in _MODEL_ROUTES:
            _ModelCall(self, _MODEL_ROUTES[path], path).run(raw)
        else:
            self._not_found(path)


class _ModelCall:
    """One model request: parse, script, account, answer and record."""

    def __init__(self, handler: _Handler, provider: Provider, path: str) -> None:
        self.handler = handler
        self.provider = provider
        self.path = path
        self.owner = handler.server.owner
        self.arrived = self.owner.clock()
        self.body: Any = None
        self.request: ParsedRequest | None = None

    def record(self, status: int, usage: dict[str, Any] | None = None, text: str = "") -> None:
        request = self.request
        model = self.body.get("model") if isinstance(self.body, Mapping) else None
        self.owner._record(
            RecordedExchange(
                api=self.provider.api,
                path=self.path,
                model=model if isinstance(model, str) else None,
                stream=request.stream if request else bool(isinstance(self.body, Mapping) and self.body.get("stream")),
                status=status,
                usage=usage,
                request_body=self.body,
                output_text=text,
                time=self.arrived,
            )
        )

    def fail(self, status: int, message: str, headers: Mapping[str, str] | None = None) -> None:
        request_id = f"req_agentprof{self.owner._next_sequence():08d}"
        all_headers = {self.provider.request_id_header: request_id, **(headers or {})}
        self.record(status)
        self.handler._send_json(status, self.provider.error_body(status, message), all_headers)

    def run(self, raw: bytes) -> None:
        try:
            self.body = json.loads(raw)
        except ValueError as exc:
            return self.fail(400, f"We could not parse the JSON body of your request: {exc}")
        try:
            request = self.request = self.provider.parse(self.body)
            script = self.owner._take_script() or parse_directives(request.script_text) or ScriptedReply()
        except (RequestError, ScriptError) as exc:
            return self.fail(400, str(exc))
        if script.delay_ms:
            time.sleep(script.delay_ms / 1000)
        if script.status != 200:
            headers = {"retry-after-ms": str(script.retry_after_ms)} if script.retry_after_ms is not None else {}
            message = script.error_message or f"Scripted error: HTTP {script.status}"
            return self.fail(script.status, message, headers)
        if script.tool_calls and not request.has_tools:
            return self.fail(400, "A tool call was scripted but the request defines no tools.")
        try:
            inputs = self.provider.input_usage(request, self.owner.prompt_cache)
        except CacheRequestError as exc:
            return self.fail(400, str(exc))
        sequence = self.owner._next_sequence()
        fingerprint = {k: v for k, v in request.body.items() if k not in ("stream", "stream_options")}
        reply = plan_reply(
            script,
            default_text=default_reply_text(fingerprint),
            max_tokens=request.max_tokens,
            tool_id_prefix=self.provider.tool_id_prefix,
            sequence=sequence,
        )
        response_id = f"{self.provider.response_id_prefix}{sequence:08d}"
        headers = {self.provider.request_id_header: f"req_agentprof{sequence:08d}"}
        created = int(time.time())
        if not request.stream:
            body = self.provider.response_body(request, reply, inputs, response_id, created)
            self.record(200, body["usage"], reply.text)  # first, so the client never sees an answer unrecorded
            return self.handler._send_json(200, body, headers)
        events = self.provider.stream_events(request, reply, inputs, response_id, created)
        self.stream(events, headers, script)

    def stream(self, events: list[SseEvent], headers: dict[str, str], script: ScriptedReply) -> None:
        handler = self.handler
        headers.update({"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"})
        headers["Transfer-Encoding"] = "chunked"
        to_send = events[: max(1, len(events) // 2)] if script.stream_error else events
        # Record before the last event leaves, so a client that has read the whole stream always
        # finds the exchange recorded; a client that goes away early gets a record of what it got.
        recorded = False
        sent: list[SseEvent] = []
        try:
            handler.wfile.write(handler._head(200, headers))
            for index, event in enumerate(to_send):
                if index and script.chunk_delay_ms:
                    time.sleep(script.chunk_delay_ms / 1000)
                if index == len(to_send) - 1:
                    self.record_stream([*sent, event])
                    recorded = True
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(event.data), event.data))
                sent.append(event)
            if script.stream_error:
                # No terminating chunk: the client sees the body end early and its SDK raises.
                handler.close_connection = True
            else:
                handler.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client went away mid-stream
            handler.close_connection = True
        if not recorded:
            self.record_stream(sent)

    def record_stream(self, sent: list[SseEvent]) -> None:
        usages = [event.usage for event in sent if event.usage is not None]
        self.record(200, usages[-1] if usages else None, "".join(event.text for event in sent))


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
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind the port and start serving in a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("TestServer is already running")
        self._httpd = _HTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="agentprof-testserver", daemon=True
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
