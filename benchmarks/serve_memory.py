"""Resident memory of ``agentprof serve`` (front end and worker processes) under a sustained stream of spans.

Starts ``agentprof serve --port 0`` as a separate process and sends it traces from one client
thread as fast as it answers (the requests of ``receiver.py``: an agent, a tool and six chat
spans per trace, 512 spans per request; 503 answers are retried after 10 ms). At each
checkpoint of spans sent it waits two seconds and prints the resident memory of the server and
of each of its worker processes (``/proc``, including a spool load running then), the spool's size
and the store's (serve loads the spool into the store every ``--ingest-every`` seconds). ``--content-kb`` sets the
size of the system instructions every chat span carries (``receiver.py`` sends 2 KB; with
content capture on, real agents send their whole conversation with every call).

A receiver runs for days: its memory must be bounded by its queues and buffers, whatever the
spans' size, not grow with the spans it has seen. ``--root`` runs the server from another
checkout (its ``agentprof`` package first on ``PYTHONPATH``), for a before/after comparison::

    python benchmarks/serve_memory.py                                  # 50k 250k 500k 1M spans, 2 KB
    python benchmarks/serve_memory.py --content-kb 20 --spans 25000 100000 200000
    python benchmarks/serve_memory.py --root /tmp/base --content-kb 20 --spans 25000 100000 200000
    python benchmarks/serve_memory.py --ingest-every 0 --spans 250000 500000 1000000   # spool only
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import receiver


def process_tree_rss_mib(pid: int) -> list[float]:
    """Resident memory of ``pid`` and then of each of its children, in MiB (Linux ``/proc``)."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            pids.append(int(entry.name))
    sizes = []
    for each in pids:
        try:
            pages = int(Path(f"/proc/{each}/statm").read_text().split()[1])
        except OSError:
            continue
        sizes.append(pages * os.sysconf("SC_PAGE_SIZE") / 2**20)
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--spans", type=int, nargs="+", default=[50_000, 250_000, 500_000, 1_000_000])
    parser.add_argument("--content-kb", type=int, default=2, help="system instructions per chat span (KB)")
    parser.add_argument("--root", type=Path, help="run the server from this checkout instead")
    parser.add_argument(
        "--ingest-every", type=float, help="serve's --ingest-every (default: serve's own; 0: spool only)"
    )
    args = parser.parse_args()
    text = "You are a careful support agent. "  # 33 characters
    receiver._SYSTEM = json.dumps([{"type": "text", "content": text * (args.content_kb * 1024 // len(text))}])
    env = dict(os.environ)
    if args.root is not None:
        env["PYTHONPATH"] = str(args.root.resolve())
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-c", "from agentprof.cli import main; main()", "serve", "--port", "0", "--db", tmp]
        if args.ingest_every is not None:
            command += ["--ingest-every", f"{args.ingest_every:g}"]
        server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp)
        assert server.stderr is not None
        match = receiver._URL.search(server.stderr.readline())
        assert match, "serve did not start"
        url = match.group(1) + "/v1/traces"
        time.sleep(2)
        sizes = process_tree_rss_mib(server.pid)
        print(f"idle: serve RSS {sum(sizes):.1f} MiB ({', '.join(f'{s:.1f}' for s in sizes)})", flush=True)
        sent = index = 0
        started = time.perf_counter()
        try:
            for checkpoint in sorted(args.spans):
                while sent < checkpoint:
                    receiver.post(url, receiver.build_request(index, 512).SerializeToString(), "application/x-protobuf")
                    index += 1
                    sent += 512
                time.sleep(2)
                sizes = process_tree_rss_mib(server.pid)
                spool = sum(path.stat().st_size for path in (Path(tmp) / "spool").glob("seg-*")) / 2**20
                database = Path(tmp) / "agentprof.duckdb"
                stored = database.stat().st_size / 2**20 if database.exists() else 0.0
                print(
                    f"after {sent:>9,} spans ({time.perf_counter() - started:5.0f} s): serve RSS {sum(sizes):7.1f} MiB "
                    f"({', '.join(f'{s:.1f}' for s in sizes)}); spool {spool:,.0f} MiB; store {stored:,.0f} MiB",
                    flush=True,
                )
        finally:
            server.send_signal(signal.SIGTERM)
            _, closing = server.communicate(timeout=600)
            print(closing.strip().splitlines()[-1] if closing.strip() else "(serve said nothing on stopping)")


if __name__ == "__main__":
    main()
