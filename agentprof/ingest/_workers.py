"""``agentprof serve --workers N``: decoding and mapping spread over N worker processes.

A received span costs ~50-60 µs of CPU in Python (decode, trace assembly, mapping, pricing,
fingerprinting, the spool line), so one process tops out near 15,000 spans/s whatever the
machine. Each worker process runs a whole :class:`~agentprof.ingest._intake.Intake` for one
:class:`~agentprof.ingest._decode.Shard` of the traces (by trace id), so every trace is still
assembled in one place and nothing about mapping changes. The HTTP front end hands every
protobuf body to every worker (parsing the bytes costs ~0.5 µs a span; the expensive part runs
only for the worker's own share) and answers once all of them have. A JSON body is decoded once,
by the front end, and each worker gets its share of the decoded spans (pickled, ~5 µs a span
both ways): reading JSON costs ~40 µs a span here, which every worker would otherwise pay for
the whole body. The front end also answers a JSON body that is not a valid request itself, so
no worker stores part of a request the client is told was refused.

Each worker writes its own spool segments, as any instrumented process does. A worker that dies
is started again, and the request it failed is answered 503 so that the client sends it again
(spans it held but had not written yet are lost with it: the error log says how many were held).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from pathlib import Path

from agentprof import _safety
from agentprof.ingest._decode import DecodedRequest, RequestDecodeError, Shard, decode_json
from agentprof.ingest._intake import (
    BUSY,
    PROTOBUF,
    Intake,
    Outcome,
    ReceiverStats,
    Snapshot,
    tune_gc_for_serving,
    warm_up,
)
from agentprof.ingest._traces import MappedSpans

#: Sent to a worker instead of a content type: a decoded request's share follows, not a body.
_DECODED = "agentprof/decoded"
_PICKLE = pickle.HIGHEST_PROTOCOL
#: Longest wait for a worker to load (spawned workers import agentprof and the price data).
_START_TIMEOUT_S = 120.0
_MAX_DEFAULT_WORKERS = 4


def default_workers() -> int:
    """Worker processes ``agentprof serve`` starts unless told: one per CPU (at most 4), none on one CPU.

    With one CPU a worker process only adds the cost of passing bodies to it.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cpus < 2 else min(cpus, _MAX_DEFAULT_WORKERS)


def _context() -> BaseContext:
    """Fork while this process has one thread (cheap: modules and price data are already loaded), else spawn.

    Forking a process with other threads running can copy a lock some thread holds, and the
    child would wait on it forever.
    """
    if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _worker_main(conn: Connection, spool_dir: str, shard: Shard, queue_size: int, close_first: tuple[int, ...]) -> None:
    """One worker process: answer each body with an :class:`Outcome` and a :class:`Snapshot`, until told to stop.

    Ctrl-C reaches the whole process group: the front end decides when workers stop, so they
    ignore SIGINT and finish writing what they hold when asked (or when the front end is gone).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in close_first:  # descriptors a forked child inherited but must not hold (see WorkerPool._launch)
        try:
            os.close(fd)
        except OSError:
            pass
    intake = Intake(Path(spool_dir), queue_size=queue_size, shard=shard).start()
    tune_gc_for_serving()
    conn.send(intake.snapshot())
    try:
        while True:
            try:
                content_type = conn.recv()
                if content_type is None:
                    break
                body = conn.recv_bytes()
            except (EOFError, OSError):  # the front end is gone: write what is held
                break
            if content_type == _DECODED:
                decoded: DecodedRequest = pickle.loads(body)  # from the front end, over our own pipe
                outcome = intake.submit_decoded(decoded)
            else:
                outcome = intake.submit(body, content_type)
            conn.send((outcome, intake.snapshot()))
    finally:
        intake.stop()
        try:
            conn.send(intake.snapshot())
        except OSError:
            pass


@dataclass(slots=True)
class _Worker:
    shard: Shard
    process: BaseProcess
    conn: Connection
    last: Snapshot


class WorkerPool:
    """``count`` worker processes sharing the traces of every request; the same interface as :class:`Intake`."""

    def __init__(
        self, spool_dir: Path, count: int, *, queue_size: int = 256, inherited_fds: tuple[int, ...] = ()
    ) -> None:
        if count < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.spool_dir = spool_dir
        self.count = count
        self._queue_size = queue_size
        self._inherited = inherited_fds
        self._workers: list[_Worker] = []
        self._finished = ReceiverStats()  # counters of workers that died or stopped
        self._finished_totals = MappedSpans()
        self._requests = 0
        self._throttled = 0
        self._lock = threading.Lock()  # one body at a time: every worker sees bodies in the same order
        self._stopped = False
        self.start_method = ""  # "fork" or "spawn", once started

    def start(self) -> WorkerPool:
        """Start the workers and wait until each has loaded.

        Raises:
            OSError: A worker could not be started (the others are stopped again).
        """
        context = _context()
        self.start_method = context.get_start_method()
        if self.start_method == "fork":
            warm_up()  # loaded once here, inherited by every worker
        try:
            for index in range(self.count):
                self._workers.append(self._launch(context, Shard(index, self.count)))
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, context: BaseContext, shard: Shard) -> _Worker:
        ours, theirs = context.Pipe()
        # A forked child holds copies of this process's descriptors: the listening socket, and the
        # front end's ends of every worker's pipe, its own included. It closes them, or a worker
        # would never see its pipe close when the front end dies, nor would its siblings.
        close_in_child: tuple[int, ...] = ()
        if context.get_start_method() == "fork":
            siblings = tuple(worker.conn.fileno() for worker in self._workers if not worker.conn.closed)
            close_in_child = (*self._inherited, ours.fileno(), *siblings)
        process = context.Process(  # type: ignore[attr-defined]  # BaseContext proxies Process
            target=_worker_main,
            args=(theirs, str(self.spool_dir), shard, self._queue_size, close_in_child),
            name=f"agentprof-serve-worker-{shard.index}",
            daemon=True,
        )
        process.start()
        theirs.close()
        if not ours.poll(_START_TIMEOUT_S):
            process.kill()
            raise OSError(f"worker {shard.index} did not start within {_START_TIMEOUT_S:.0f} s")
        try:
            ready = ours.recv()
        except EOFError:
            process.join()
            raise OSError(f"worker {shard.index} exited while starting (exit code {process.exitcode})") from None
        return _Worker(shard, process, ours, ready)

    @property
    def stats(self) -> ReceiverStats:
        """Counters of all workers (as of their last answer), requests and 503s counted here."""
        total = ReceiverStats()
        total.add(self._finished)
        for worker in self._workers:
            total.add(worker.last.stats)
        total.requests = self._requests
        total.throttled = self._throttled
        return total

    @property
    def totals(self) -> MappedSpans:
        """What the workers mapped and spooled (as of their last answer)."""
        total = MappedSpans()
        total.add(self._finished_totals)
        for worker in self._workers:
            total.add(Snapshot.mapped(worker.last.totals))
        return total

    def submit(self, body: bytes, content_type: str) -> Outcome:
        """Hand ``body`` (a JSON one decoded here first) to every worker; ``ok`` only when each took its share."""
        shares = None
        if content_type != PROTOBUF:
            try:
                shares = self._decoded_shares(decode_json(body))
            except RequestDecodeError as exc:
                with self._lock:
                    self._requests += 1
                return Outcome("invalid", message=str(exc))
        with self._lock:
            self._requests += 1
            failed: list[int] = []
            for index, worker in enumerate(self._workers):
                try:
                    if shares is None:
                        worker.conn.send(content_type)
                        worker.conn.send_bytes(body)
                    else:
                        worker.conn.send(_DECODED)
                        worker.conn.send_bytes(shares[index])
                except OSError:
                    failed.append(index)
            outcomes: list[Outcome] = []
            for index, worker in enumerate(self._workers):
                if index in failed:
                    continue
                try:
                    outcome, worker.last = worker.conn.recv()
                except (EOFError, OSError):
                    failed.append(index)
                    continue
                outcomes.append(outcome)
            for index in failed:
                self._replace(index)
            combined = BUSY if failed else _combine(outcomes)
            if combined is BUSY:
                self._throttled += 1
            return combined

    def _decoded_shares(self, decoded: DecodedRequest) -> list[bytes] | None:
        """Each worker's share of a decoded request, pickled; ``None`` if one cannot be.

        Pickling fails only on values nested beyond the recursion limit; the workers then get
        the body itself and decode it as before, so the answer is the same either way.
        """
        try:
            return [pickle.dumps(Shard(index, self.count).restrict(decoded), _PICKLE) for index in range(self.count)]
        except (RecursionError, pickle.PicklingError):
            return None

    def _replace(self, index: int) -> None:
        """Start a new worker for the share of one that died (what it held is lost, and logged)."""
        dead = self._workers[index]
        dead.conn.close()
        dead.process.join(timeout=5)
        held = dead.last.stats.spans_accepted - dead.last.stats.rows_written
        _safety.logger.error(
            "agentprof serve: worker %d exited (exit code %s) holding up to %d unwritten spans; starting another",
            index,
            dead.process.exitcode,
            max(held, 0),
        )
        self._finished.add(dead.last.stats)
        self._finished_totals.add(Snapshot.mapped(dead.last.totals))
        try:
            self._workers[index] = self._launch(_context(), dead.shard)
        except OSError as exc:
            _safety.internal_error("serve.worker_restart", exc)

    def stop(self) -> None:
        """Have every worker write what it holds and exit. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        with self._lock:
            for worker in self._workers:
                try:
                    worker.conn.send(None)
                except OSError:
                    pass
            for worker in self._workers:
                try:
                    worker.last = worker.conn.recv()
                except (EOFError, OSError):
                    pass
                worker.process.join()
                worker.conn.close()


def _combine(outcomes: list[Outcome]) -> Outcome:
    """One answer for a body every worker has answered: invalid or busy if any says so."""
    for outcome in outcomes:
        if outcome.status == "invalid":
            return outcome
    if any(outcome.status == "busy" for outcome in outcomes):
        return BUSY
    rejected = sum(outcome.rejected for outcome in outcomes)
    message = next((outcome.message for outcome in outcomes if outcome.message), "")
    return Outcome("ok", rejected, message)
