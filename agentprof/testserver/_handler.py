"""The HTTP layer: routing, one-write responses, SSE streaming and recording each exchange.

Built on :class:`http.server.ThreadingHTTPServer` so it needs nothing beyond the
standard library. Two details keep timings honest: Nagle's algorithm is off and
every non-streaming response (status line, headers and body) goes out in ONE write,
otherwise each answer waits ~40 ms for a delayed ACK. Streams use chunked transfer
encoding, one chunk per SSE event, so connections stay in the SDKs' keep-alive pools.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import sys
import threading
import time
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agentprof.testserver._anthropic import AnthropicProvider
from agentprof.testserver._cache import CacheRequestError
from agentprof.testserver._embeddings import embeddings_response
from agentprof.testserver._exchange import RecordedExchange
from agentprof.testserver._gemini import provider_for_path as gemini_provider_for_path
from agentprof.testserver._openai import OpenAIProvider
from agentprof.testserver._openai_responses import OpenAIResponsesProvider
from agentprof.testserver._platforms import provider_for_path as platform_provider_for_path
from agentprof.testserver._provider import ParsedRequest, Provider, RequestError, SseEvent
from agentprof.testserver._script import ScriptedReply, ScriptError, default_reply_text, parse_directives, plan_reply

if TYPE_CHECKING:
    from agentprof.testserver._server import TestServer

_OPENAI = OpenAIProvider()
_ANTHROPIC = AnthropicProvider()
_RESPONSES = OpenAIResponsesProvider()
_MODEL_ROUTES: Mapping[str, Provider] = {
    "/v1/chat/completions": _OPENAI,
    "/chat/completions": _OPENAI,
    "/v1/messages": _ANTHROPIC,
    "/v1/responses": _RESPONSES,
    "/responses": _RESPONSES,
}


class ModelAPIServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks open connections so stop() can drop idle keep-alives."""

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

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet when a client went away (a stream closed early, a reset, ``stop()``); print anything else.

        The standard library prints a traceback for both, which made test output look broken when
        a test had simply stopped reading.
        """
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: ModelAPIServer

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
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:  # scripted statuses may be non-standard, e.g. Anthropic's 529
            phrase = ""
        lines = [
            f"HTTP/1.1 {status} {phrase}",
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

    def _embeddings(self, raw: bytes, path: str) -> None:
        owner = self.server.owner
        try:
            body = json.loads(raw)
        except ValueError as exc:
            self._send_json(400, _OPENAI.error_body(400, f"We could not parse the JSON body of your request: {exc}"))
            return
        try:
            answer = embeddings_response(body)
        except RequestError as exc:
            self._send_json(400, _OPENAI.error_body(400, str(exc)))
            return
        owner._record(
            RecordedExchange(
                api="openai",
                path=path,
                model=answer["model"],
                stream=False,
                status=200,
                usage=answer["usage"],
                request_body=body,
                output_text="",
                time=owner.clock(),
            )
        )
        self._send_json(200, answer, {"x-request-id": f"req_agentprof{owner._next_sequence():08d}"})

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
        elif path in ("/v1/embeddings", "/embeddings"):
            self._embeddings(raw, path)
        elif path in _MODEL_ROUTES:
            _ModelCall(self, _MODEL_ROUTES[path], path).run(raw)
        elif (gemini := gemini_provider_for_path(path)) is not None:  # the model is in the path
            _ModelCall(self, gemini, path).run(raw)
        elif (platform := platform_provider_for_path(path)) is not None:  # Azure, Bedrock, Vertex paths
            _ModelCall(self, platform, path).run(raw)
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
        body_model = self.body.get("model") if isinstance(self.body, Mapping) else None
        model = request.model if request else body_model  # Gemini names the model in the path, not the body
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
            # Recorded first, so the client never sees an answer unrecorded.
            self.record(200, self.provider.usage(inputs, reply), reply.text)
            return self.handler._send_json(200, body, headers)
        events = self.provider.stream_events(request, reply, inputs, response_id, created)
        self.stream(events, headers, script)

    def stream(self, events: list[SseEvent], headers: dict[str, str], script: ScriptedReply) -> None:
        handler = self.handler
        content_type = getattr(self.provider, "stream_content_type", "text/event-stream; charset=utf-8")
        headers.update({"Content-Type": content_type, "Cache-Control": "no-cache"})
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
