"""Reading OTLP JSON trace files: one request per file, or the Collector's JSON lines.

The OpenTelemetry Collector's file exporter writes one ``ExportTraceServiceRequest`` JSON
object per line; hand-saved exports are usually one (possibly pretty-printed) object. A file
whose first line is a complete JSON value is read as JSON lines, otherwise as one document.
Gzip files are recognised by their magic bytes.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from io import BufferedIOBase
from pathlib import Path

from agentprof.ingest._decode import DecodedRequest, RequestDecodeError, decode_json

_GZIP_MAGIC = b"\x1f\x8b"


class TraceFileError(ValueError):
    """A file (or one of its lines) is not OTLP JSON; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class FileProgress:
    """Where reading a file got to (compressed bytes for gzip files)."""

    position: int
    size: int


def _open(path: Path) -> tuple[BufferedIOBase, BufferedIOBase]:
    """(text source, raw file for progress) of ``path``."""
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller through read_requests
    if raw.read(2) == _GZIP_MAGIC:
        raw.seek(0)
        return gzip.GzipFile(fileobj=raw), raw
    raw.seek(0)
    return raw, raw


def read_requests(path: Path, on_progress: Callable[[FileProgress], None] | None = None) -> Iterator[DecodedRequest]:
    """Yield the decoded requests of one file, in order.

    Raises:
        TraceFileError: A line (or the document) is not an OTLP JSON request; the requests
            before it have been yielded already.
        OSError: The file cannot be read.
    """
    size = path.stat().st_size
    source, raw = _open(path)
    try:
        first = source.readline()
        try:
            lines_mode = bool(first.strip()) and _is_json(first)
        except (OSError, EOFError) as exc:
            raise TraceFileError(f"{path}: unreadable ({exc})") from None
        if not lines_mode:
            rest = first + _read_rest(source, path)
            if not rest.strip():
                return
            yield _decode(rest, f"{path}")
            if on_progress:
                on_progress(FileProgress(size, size))
            return
        number = 1
        line = first
        while line:
            if line.strip():
                yield _decode(line, f"{path}:{number}")
                if on_progress:
                    on_progress(FileProgress(raw.tell(), size))
            try:
                line = source.readline()
            except (OSError, EOFError) as exc:
                raise TraceFileError(f"{path}:{number + 1}: unreadable ({exc})") from None
            number += 1
    finally:
        source.close()
        raw.close()


def _read_rest(source: BufferedIOBase, path: Path) -> bytes:
    try:
        return source.read()
    except (OSError, EOFError) as exc:
        raise TraceFileError(f"{path}: unreadable ({exc})") from None


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def _decode(text: bytes, where: str) -> DecodedRequest:
    try:
        return decode_json(text)
    except RequestDecodeError as exc:
        raise TraceFileError(f"{where}: {exc}") from None
