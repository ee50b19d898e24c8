"""An OTLP/HTTP trace receiver writing what it receives into the store's spool.

Transport rules (OTLP specification, research notes ``otel_genai.md`` §4): ``POST /v1/traces``
with ``application/x-protobuf`` or ``application/json`` (answered in the same content type),
optional ``Content-Encoding: gzip``, at most 64 MiB before *and* after decompression (413),
``400`` with a ``google.rpc.Status`` for undecodable data, ``415`` for other content types,
``404`` for other paths, ``partial_success`` when some spans are invalid, and ``503`` with
``Retry-After`` when the writer is behind (a retryable code: the client sends it again).

HTTP threads only decode and validate; one writer thread assembles traces and writes spool
segments, so the database is never opened here and ``agentprof report`` can run meanwhile.
Retries are idempotent: spans already accepted (by trace and span id) are dropped on arrival,
and the store's primary keys ignore anything that slips through. :meth:`OtlpReceiver.stop`
drains the queue and writes every held span before returning.
"""

from __future__ import annotations

import hmac
import json
import queue
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agentprof import _safety
from agentprof._records import SpoolRow
from agentprof._spool import SpoolWriter
from agentprof._usage import CanonicalUsage
from agentprof.ingest._buffer import TraceBuffer
from agentprof.ingest._decode import DecodedRequest, FlatSpan, RequestDecodeError, decode_json, decode_protobuf
from agentprof.ingest._traces import MappedSpans

MAX_BODY_BYTES = 64 * 1024 * 1024
TRACES_PATH = "/v1/traces"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
RETRY_AFTER_S = 1
_SEEN_CAPACITY = 1 << 18
_TICK_S = 0.2


class _TooLarge(Exception):
    pass


@dataclass(slots=True)
class ReceiverStats:
    """Counters of one receiver (for the shutdown summary and tests)."""

    requests: int = 0
    spans_accepted: int = 0
    spans_rejected: int = 0
    spans_duplicate: int = 0
    throttled: int = 0
    rows_written: int = 0
    write_failures: int = 0


class OtlpReceiver:
    """Receives OTLP/HTTP traces on ``host:port`` and spools them into ``spool_dir``.

    Use :meth:`start` / :meth:`stop` (or ``with``). ``port=0`` picks a free port (see :attr:`port`).
    """

    def __init__(
        self,
        spool_dir: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 4318,
        token: str | None = None,
        queue_size: int = 256,
        max_body_bytes: int = MAX_BODY_BYTES,
        buffer: TraceBuffer | None = None,
    ) -> None:
        self.spool_dir = spool_dir
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.stats = ReceiverStats()
        self._writer = SpoolWriter(spool_dir)
        self._buffer = buffer or TraceBuffer(self._write_rows)
        self._queue: queue.Queue[list[FlatSpan] | None] = queue.Queue(maxsize=queue_size)
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._lock = threading.Lock()
        self._hold = threading.Lock()
        self._server = _Server((host, port), _Handler)
        self._server.receiver = self
        self._threads: list[threading.Thread] = []
        self._stopped = False

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self._server.server_address[1])

    @property
    def totals(self) -> MappedSpans:
        """What was mapped and spooled so far (tasks, steps, model calls, skipped spans)."""
        return self._buffer.totals

    @property
    def url(self) -> str:
        """Base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        host = self._server.server_address[0]
        return f"http://{host if isinstance(host, str) else host.decode()}:{self.port}"

    def start(self) -> OtlpReceiver:
        """Start serving and writing in background threads."""
        _warm_up()
        for target, name in ((self._serve, "http"), (self._run_writer, "writer")):
            thread = threading.Thread(target=target, name=f"agentprof-serve-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=_TICK_S / 2)  # how long stop() waits for the loop

    def stop(self) -> None:
        """Stop accepting, finish requests in flight, write everything held. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()  # joins the request threads: their spans are queued by now
        self._queue.put(None)
        for thread in self._threads:
            if thread.name.endswith("writer"):
                thread.join()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextmanager
    def hold_writer(self) -> Iterator[None]:
        """Pause the writer thread (its queue fills, then requests get 503): maintenance and tests."""
        with self._hold:
            yield

    # --- called by request threads -------------------------------------------------------
    def accept(self, decoded: DecodedRequest) -> bool:
        """Queue the new spans of a decoded request; ``False`` when the queue is full."""
        with self._lock:
            fresh = [span for span in decoded.spans if (span.trace_id, span.span_id) not in self._seen]
            if not fresh:
                self.stats.spans_duplicate += len(decoded.spans)
                self.stats.spans_rejected += decoded.rejected
                return True
            try:
                self._queue.put_nowait(fresh)
            except queue.Full:
                self.stats.throttled += 1
                return False
            for span in fresh:
                self._seen[(span.trace_id, span.span_id)] = None
            while len(self._seen) > _SEEN_CAPACITY:
                self._seen.popitem(last=False)
            self.stats.spans_accepted += len(fresh)
            self.stats.spans_duplicate += len(decoded.spans) - len(fresh)
            self.stats.spans_rejected += decoded.rejected
        return True

    # --- the writer thread -------------------------------------------------------------
    def _run_writer(self) -> None:
        flushed = time.monotonic()
        while True:
            try:
                batch = self._queue.get(timeout=_TICK_S)
            except queue.Empty:
                batch = []
            with self._hold:
                try:
                    if batch is None:
                        self._drain()
                        self._buffer.flush_all()
                        return
                    if batch:
                        self._buffer.add(batch)
                    # once a tick, not after every batch: the check walks every trace held
                    if time.monotonic() - flushed >= _TICK_S:
                        self._buffer.flush_ready()
                        flushed = time.monotonic()
                except Exception as exc:  # a mapping bug must not stop the receiver
                    _safety.internal_error("serve.writer", exc)

    def _drain(self) -> None:
        while True:
            try:
                batch = self._queue.get_nowait()
            except queue.Empty:
                return
            if batch:
                self._buffer.add(batch)

    def _write_rows(self, rows: list[SpoolRow]) -> None:
        try:
            self.stats.rows_written += self._writer.write_segment(rows)
        except OSError as exc:
            self.stats.write_failures += 1
            _safety.logger.error(
                "agentprof serve: cannot write to %s (%s); %d rows lost", self.spool_dir, exc, len(rows)
            )


def _warm_up() -> None:
    """Load the price data now (~0.2 s of CPU), not while the first received batch waits for it."""
    try:
        from agentprof.pricing import price_call, resolve_model

        usage = CanonicalUsage(input_tokens=1, output_tokens=1)
        price_call(usage, resolve_model("openai", "gpt-4o", None), timestamp=datetime.now(UTC))
    except Exception as exc:  # pricing will say so again, per call; serving must start regardless
        _safety.internal_error("serve.warm_up", exc)


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    receiver: OtlpReceiver


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    server_version = "agentprof-serve"
    # Headers and body leave in one write (a buffered wfile, flushed after each request) with
    # Nagle off: written apart, every answer waits ~40 ms for the client's delayed ACK.
    wbufsize = -1
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        """Quiet: one line per request would drown the terminal."""

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        """Only POST is served."""
        self._reply_status(404 if self.path.split("?")[0] != TRACES_PATH else 405, "use POST /v1/traces", JSON)

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        """Receive one export request."""
        receiver = self.server.receiver
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        reply_type = content_type if content_type in (PROTOBUF, JSON) else JSON
        if self.path.split("?")[0] != TRACES_PATH:
            self._discard_body()
            self._reply_status(404, f"unknown path {self.path}: traces go to POST {TRACES_PATH}", reply_type)
            return
        if receiver.token is not None and not _authorized(self.headers.get("Authorization"), receiver.token):
            self._discard_body()
            self._reply_status(401, "missing or wrong bearer token", reply_type, extra={"WWW-Authenticate": "Bearer"})
            return
        if reply_type != content_type:
            self._discard_body()
            wanted = f"use {PROTOBUF} or {JSON}"
            self._reply_status(415, f"unsupported content type {content_type or '(none)'}: {wanted}", JSON)
            return
        try:
            body = self._read_body(receiver.max_body_bytes)
        except _TooLarge:
            self.close_connection = True
            self._reply_status(413, f"request larger than {receiver.max_body_bytes} bytes", reply_type)
            return
        except (ValueError, zlib.error, EOFError) as exc:
            self._reply_status(400, f"unreadable body: {exc}", reply_type)
            return
        with receiver._lock:
            receiver.stats.requests += 1
        try:
            decoded = decode_protobuf(body) if content_type == PROTOBUF else decode_json(body)
        except RequestDecodeError as exc:
            self._reply_status(400, str(exc), reply_type)
            return
        if not receiver.accept(decoded):
            self._reply_status(503, "receiver busy: retry later", reply_type, extra={"Retry-After": str(RETRY_AFTER_S)})
            return
        response = ExportTraceServiceResponse()
        if decoded.rejected:
            response.partial_success.rejected_spans = decoded.rejected
            response.partial_success.error_message = (
                f"{decoded.rejected} invalid span(s) rejected; first: {decoded.first_error}"
            )
        if reply_type == PROTOBUF:
            self._send(200, response.SerializeToString(), PROTOBUF)
        else:
            self._send(200, _response_json(response), JSON)

    def _read_body(self, limit: int) -> bytes:
        length_header = self.headers.get("Content-Length")
        if length_header is not None:
            length = int(length_header)
            if length < 0:
                raise ValueError("negative Content-Length")
            if length > limit:
                raise _TooLarge
            raw = self.rfile.read(length)
            if len(raw) != length:
                raise ValueError("body shorter than Content-Length")
        elif "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raw = self._read_chunked(limit)
        else:
            raw = b""
        encoding = (self.headers.get("Content-Encoding") or "identity").strip().lower()
        if encoding == "gzip":
            return _gunzip(raw, limit)
        if encoding not in ("identity", ""):
            raise ValueError(f"unsupported Content-Encoding {encoding}")
        return raw

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline(64).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024).strip():
                    pass
                return b"".join(parts)
            total += size
            if total > limit:
                raise _TooLarge
            parts.append(self.rfile.read(size))
            self.rfile.readline(8)

    def _discard_body(self) -> None:
        length = self.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) <= MAX_BODY_BYTES:
            self.rfile.read(int(length))
        else:
            self.close_connection = True

    def _reply_status(self, code: int, message: str, content_type: str, extra: dict[str, str] | None = None) -> None:
        status = Status(code=_GRPC_CODES.get(code, 2), message=message)
        body = (
            status.SerializeToString()
            if content_type == PROTOBUF
            else json.dumps({"code": status.code, "message": message}).encode()
        )
        self._send(code, body, content_type, extra)

    def _send(self, code: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


#: HTTP status -> google.rpc.Code, for the Status body (informational: OTLP ignores ``code``).
_GRPC_CODES = {400: 3, 401: 16, 404: 5, 405: 12, 413: 8, 415: 3, 503: 14}


def _authorized(header: str | None, token: str) -> bool:
    if not header or not header.lower().startswith("bearer "):
        return False
    return hmac.compare_digest(header[7:].strip().encode(), token.encode())


def _gunzip(raw: bytes, limit: int) -> bytes:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = decompressor.decompress(raw, limit + 1)
    if len(data) > limit or decompressor.unconsumed_tail:
        raise _TooLarge
    if not decompressor.eof:
        raise ValueError("truncated gzip body")
    return data


def _response_json(response: ExportTraceServiceResponse) -> bytes:
    if not response.HasField("partial_success"):
        return b"{}"
    partial = response.partial_success
    return json.dumps(
        {"partialSuccess": {"rejectedSpans": str(partial.rejected_spans), "errorMessage": partial.error_message}}
    ).encode()
