"""``agentprof serve`` as a process: it listens, and SIGTERM writes everything it received."""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from agentprof.cli import main
from tests.ingest.helpers import S, request
from tests.ingest.test_receiver import AGENT, CALL

_URL = re.compile(r"on (http://127\.0\.0\.1:\d+)/v1/traces")


def _abort_mid_body(url: str) -> None:
    """Send a request's headers and part of its body, then reset the connection (an RST, not a FIN)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_sigterm_flushes_what_was_received_and_report_shows_it(tmp_path: Path) -> None:
    import urllib.request

    store = tmp_path / "store"
    env = {**os.environ, "AGENTPROF_SERVE_TOKEN": "tok"}
    process = subprocess.Popen(
        [sys.executable, "-c", "from agentprof.cli import main; main()", "serve", "--port", "0", "--db", str(store)],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        banner = process.stderr.readline()
        match = _URL.search(banner)
        assert match, banner
        _abort_mid_body(match.group(1))  # a client that gives up: counted, no traceback
        body = request([S(1, None, "invoke_agent support", AGENT), S(2, 1, "chat gpt-4o", CALL)]).SerializeToString()
        req = urllib.request.Request(
            match.group(1) + "/v1/traces",
            data=body,
            method="POST",
            headers={"Content-Type": "application/x-protobuf", "Authorization": "Bearer tok"},
        )
        with urllib.request.urlopen(req, timeout=10) as response:
            assert response.status == 200
        process.send_signal(signal.SIGTERM)  # before the trace settles: shutdown must write it
        _, rest = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, rest
    assert "2 spans received" in rest and "1 tasks, 0 steps, 1 model calls spooled" in rest
    assert "; 1 request(s) cut off by the client" in rest and "Traceback" not in rest
    result = CliRunner().invoke(main, ["tasks", "--db", str(store), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "support" in result.output


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(main, ["serve", "--port", str(port), "--db", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cannot listen on 127.0.0.1:{port}") and result.output.count("\n") == 1
