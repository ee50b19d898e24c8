"""Per-process spool of finished spans: the only thing an instrumented process ever writes.

Writers never open the database (DuckDB allows one writing process per file, and agent
services run many workers). Each export batch becomes one segment file, written under a
hidden temporary name and renamed into place, so a reader sees whole segments or nothing and a
crash leaves no half file. The store ingests segments exactly once (see ``agentprof.store``).

File names: ``seg-<unix_ns>-<pid>-<seq>-<random>.jsonl``; temporaries start with ``.tmp-``.
Each line is one JSON object whose keys are a subset of ``agentprof._records.SPOOL_COLUMNS``.
Health counters of a process (spans written, batches dropped, internal errors) are kept in
``health-<pid>-<random>.json`` beside the segments for ``agentprof doctor``.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path

import orjson

from agentprof._records import SpoolRow

SEGMENT_GLOB = "seg-*.jsonl"
HEALTH_GLOB = "health-*.json"
TEMP_PREFIX = ".tmp-"

_LINE = orjson.OPT_APPEND_NEWLINE
_BUFFER_BYTES = 1 << 18


def encode_row(row: SpoolRow) -> bytes:
    """One spool line: ``row`` as compact UTF-8 JSON and a newline.

    orjson writes the same bytes as ``json.dumps(row, separators=(",", ":"), ensure_ascii=False)``
    for what rows hold (strings, ints, floats, booleans, None) in a tenth of the time (~1 µs
    instead of ~10 per model call, on the exporter thread and in ``agentprof serve`` alike); a
    float that is not finite becomes ``null`` instead of the invalid ``NaN``. What orjson refuses
    (an int beyond 64 bits, a non-string key) takes the standard library's path, which writes it
    as before or raises as before (``TypeError``, or ``UnicodeEncodeError`` for a lone surrogate).
    """
    try:
        return orjson.dumps(row, option=_LINE)
    except TypeError:
        return json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


class SpoolWriter:
    """Writes batches of spool rows as atomically renamed segment files.

    Not thread-safe by itself: the exporter calls it from its single worker thread.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._token = secrets.token_hex(4)
        self._seq = 0
        self._ready = False

    def write_segment(self, rows: Iterable[SpoolRow]) -> int:
        """Write ``rows`` as one new segment; return the number of rows written.

        Raises:
            OSError: The directory cannot be created or the disk is full. The temporary file
                is removed first, so nothing partial is ever visible to readers.
        """
        if not self._ready:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._ready = True
        self._seq += 1
        name = f"seg-{time.time_ns()}-{os.getpid()}-{self._seq:06d}-{self._token}.jsonl"
        temp = self.directory / f"{TEMP_PREFIX}{name}"
        count = 0
        try:
            # Each line goes straight into a large buffer: fewer write calls, and no list of lines
            # kept alive (holding a segment's lines made encoding them 2-3x slower).
            with open(temp, "wb", buffering=_BUFFER_BYTES) as handle:
                write = handle.write
                for row in rows:
                    write(encode_row(row))
                    count += 1
            if count:
                os.replace(temp, self.directory / name)
            else:
                temp.unlink()
        except BaseException:
            try:
                temp.unlink()
            except OSError:
                pass
            raise
        return count

    def write_health(self, counters: dict[str, int]) -> None:
        """Replace this process's health file with ``counters`` (best effort, atomic)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"health-{os.getpid()}-{self._token}.json"
        temp = self.directory / f"{TEMP_PREFIX}{name}"
        temp.write_text(json.dumps({"pid": os.getpid(), "updated_ns": time.time_ns(), **counters}), encoding="utf-8")
        os.replace(temp, self.directory / name)
