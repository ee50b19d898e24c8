from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from agentprof._config import StoreLocation
from agentprof.store import open_store

from .helpers import count_rows, model_calls, write_segments

REPO = Path(__file__).resolve().parents[2]

_WRITER = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from agentprof._spool import SpoolWriter
from tests.store.helpers import model_calls
worker, segments, rows = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
writer = SpoolWriter(Path(sys.argv[2]))
for segment in range(segments):
    writer.write_segment(model_calls((worker * segments + segment) * rows, rows))
"""

_INGESTER = """
import sys
from agentprof.store import open_store
with open_store(sys.argv[1], ingest=False, lock_timeout=30) as store:
    print(store.ingest_spool().segments)
"""


def test_writers_and_an_ingester_running_at_once_lose_nothing(location: StoreLocation) -> None:
    workers, segments, rows = 4, 15, 20
    with open_store(location, create=True):
        pass
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(REPO), str(location.spool_dir), str(worker), str(segments), str(rows)]
        )
        for worker in range(workers)
    ]
    ingests = 0
    while any(writer.poll() is None for writer in writers) or ingests == 0:
        with open_store(location):  # ingests whatever segments are complete right now
            ingests += 1
        time.sleep(0.02)
    assert [writer.wait() for writer in writers] == [0] * workers
    with open_store(location) as store:
        assert count_rows(store.engine, "model_calls") == workers * segments * rows
        assert count_rows(store.engine, "ingested_segments") == workers * segments
    assert list(location.spool_dir.glob("seg-*")) == []
    assert list(location.spool_dir.glob(".tmp-*")) == []


def test_two_ingesting_processes_ingest_each_segment_once(location: StoreLocation) -> None:
    write_segments(location.spool_dir, [model_calls(index * 50, 50) for index in range(40)])
    with open_store(location, create=True, ingest=False):
        pass
    ingesters = [
        subprocess.Popen(
            [sys.executable, "-c", _INGESTER, str(location.spool_dir.parent)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [ingester.communicate(timeout=60)[0] for ingester in ingesters]
    assert [ingester.returncode for ingester in ingesters] == [0, 0]
    assert sorted(int(output) for output in outputs) == [0, 40]
    with open_store(location) as store:
        assert count_rows(store.engine, "model_calls") == 2000
        assert count_rows(store.engine, "ingested_segments") == 40
