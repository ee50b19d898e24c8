"""An OTLP/HTTP trace receiver writing what it receives into the store's spool.

Transport rules (OTLP specification, research notes ``otel_genai.md`` §4): ``POST /v1/traces``
with ``application/x-protobuf`` or ``application/json`` (answered in the same content type),
optional ``Content-Encoding: gzip``, at most 64 MiB before *and* after decompression (413),
``400`` with a ``google.rpc.Status`` for undecodable data, ``415`` for other content types,
``404`` for other paths, ``partial_success`` when some spans are invalid, and ``503`` with
``Retry-After`` when the writer is behind (a retryable code: the client sends it again).

HTTP threads only read bodies; what happens to a body is the intake's business: in this process
(:class:`~agentprof.ingest._intake.Intake`, ``workers=0``) or shared by trace among worker
processes (:class:`~agentprof.ingest._workers.WorkerPool`). Either way the database is never
opened here, retries are idempotent, and :meth:`OtlpReceiver.stop` writes every held span.
"""

from __future__ import annotations

import hmac
import json
import sys
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from google.rpc.status_pb2 import Status  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agentprof import _safety
from agentprof.ingest._buffer import TraceBuffer
from agentprof.ingest._intake import JSON, PROTOBUF, Intake, ReceiverStats
from agentprof.ingest._traces import MappedSpans
from agentprof.ingest._workers import WorkerPool

__all__ = ["JSON", "MAX_BODY_BYTES", "PROTOBUF", "TRACES_PATH", "OtlpReceiver", "ReceiverStats"]

MAX_BODY_BYTES = 64 * 1024 * 1024
TRACES_PATH = "/v1/traces"
RETRY_AFTER_S = 1
_TICK_S = 0.2


class _TooLarge(Exception):
    pass


class OtlpReceiver:
    """Receives OTLP/HTTP traces on ``host:port`` and spools them into ``spool_dir``.

    Use :meth:`start` / :meth:`stop` (or ``with``). ``port=0`` picks a free port (see :attr:`port`).
    ``workers=0`` decodes and maps in this process; ``workers=N`` in N processes, each owning a
    share of the traces (``buffer`` applies only to ``workers=0``).
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
        workers: int = 0,
    ) -> None:
        self.spool_dir = spool_dir
        self.token = token
        self.max_body_bytes = max_body_bytes
        self._server = _Server((host, port), _Handler)
        self._server.receiver = self
        self.intake: Intake | WorkerPool
        if workers > 0:
            self.intake = WorkerPool(spool_dir, workers, queue_size=queue_size, inherited_fds=(self._server.fileno(),))
        else:
            self.intake = Intake(spool_dir, queue_size=queue_size, buffer=buffer)
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._lock = threading.Lock()
        #: Requests whose client closed or reset the connection before the answer was sent.
        self.client_disconnects = 0

    def note_disconnect(self) -> None:
        """Count a request its client abandoned (called from request threads)."""
        with self._lock:
            self.client_disconnects += 1

    @property
    def port(self) -> int:
        """The port actually bound."""
        return int(self._server.server_address[1])

    @property
    def stats(self) -> ReceiverStats:
        """Requests, spans accepted, rejected, duplicate, 503s, rows written, write failures."""
        return self.intake.stats

    @property
    def totals(self) -> MappedSpans:
        """What was mapped and spooled so far (tasks, steps, model calls, skipped spans)."""
        return self.intake.totals

    @property
    def url(self) -> str:
        """Base URL for ``OTEL_EXPORTER_OTLP_ENDPOINT``."""
        host = self._server.server_address[0]
        return f"http://{host if isinstance(host, str) else host.decode()}:{self.port}"

    def start(self) -> OtlpReceiver:
        """Start the intake (worker processes first, before this process has threads), then serve.

        Raises:
            OSError: A worker process could not be started.
        """
        try:
            self.intake.start()
        except BaseException:
            self._server.server_close()
            raise
        self._thread = threading.Thread(target=self._serve, name="agentprof-serve-http", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        self._server.serve_forever(poll_interval=_TICK_S / 2)  # how long stop() waits for the loop

    def stop(self) -> None:
        """Stop accepting, finish requests in flight, write everything held. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:  # shutdown() waits for a serve loop that never started otherwise
            self._server.shutdown()
        self._server.server_close()  # joins the request threads: their bodies are submitted by now
        self.intake.stop()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @contextmanager
    def hold_writer(self) -> Iterator[None]:
        """Pause the writer thread (its queue fills, then requests get 503): maintenance and tests.

        Raises:
            TypeError: The receiver runs worker processes (``workers > 0``).
        """
        if not isinstance(self.intake, Intake):
            raise TypeError("hold_writer needs workers=0")
        with self.intake.hold_writer():
            yield


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    receiver: OtlpReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Count a client that went away mid-request; report anything else as an agentprof bug.

        The standard library prints a traceback on the terminal for both. A collector that times
        out or is stopped while sending is routine: nothing of that request was acknowledged, so
        it sends again (and spans queued before the reply failed are recognised as repeats).
        """
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            self.receiver.note_disconnect()
            _safety.logger.debug("agentprof serve: client %s went away mid-request (%r)", client_address, error)
        elif error is not None:
            _safety.internal_error("serve.request", error)


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
        outcome = receiver.intake.submit(body, content_type)
        if outcome.status == "invalid":
            self._reply_status(400, outcome.message, reply_type)
            return
        if outcome.status == "busy":
            self._reply_status(503, "receiver busy: retry later", reply_type, extra={"Retry-After": str(RETRY_AFTER_S)})
            return
        response = ExportTraceServiceResponse()
        if outcome.rejected:
            response.partial_success.rejected_spans = outcome.rejected
            response.partial_success.error_message = (
                f"{outcome.rejected} invalid span(s) rejected; first: {outcome.message}"
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
