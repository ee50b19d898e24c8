"""The test server's lifecycle, HTTP plumbing, scripting queue and ground truth, through real HTTP."""

from __future__ import annotations

import http.client
import json
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest

import agentprof.testserver
from agentprof.testserver import LocalModelServer, RecordedExchange, ScriptedReply, TestServer

from .helpers import GPT, post, user

# --- public API and lifecycle -------------------------------------------------------------


def test_all_lists_the_public_names() -> None:
    public = sorted(name for name in vars(agentprof.testserver) if not name.startswith("_") and name != "annotations")
    assert agentprof.testserver.__all__ == public
    assert LocalModelServer is TestServer


def test_urls_and_lifecycle() -> None:
    server = TestServer()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.url
    with server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.openai_base_url == server.url + "/v1"
        assert server.anthropic_base_url == server.url
        with urllib.request.urlopen(server.url + "/health") as response:
            assert json.loads(response.read()) == {"status": "ok"}
    with pytest.raises(RuntimeError):
        _ = server.url


def test_stop_drops_idle_keep_alive_connections() -> None:
    with TestServer() as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port)
        connection.request("GET", "/health")
        connection.getresponse().read()
        started = time.perf_counter()
    assert time.perf_counter() - started < 1.0
    connection.close()


# --- scripting, HTTP plumbing, ground truth over HTTP ------------------------------------


def test_enqueued_replies_override_directives_in_order(server: TestServer, openai_client: openai.OpenAI) -> None:
    server.enqueue(ScriptedReply(text="first"), ScriptedReply(text="second", output_tokens=9))
    answers = [openai_client.chat.completions.create(model=GPT, messages=user("[[reply:directive]]")) for _ in range(3)]
    assert [a.choices[0].message.content for a in answers] == ["first", "second", "directive"]
    assert answers[1].usage is not None and answers[1].usage.completion_tokens == 9


def test_unknown_directive_is_a_bad_request(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="unknown directive"):
        openai_client.chat.completions.create(model=GPT, messages=user("[[staus:500]]"))


def test_delay_is_applied(openai_client: openai.OpenAI) -> None:
    started = time.perf_counter()
    openai_client.chat.completions.create(model=GPT, messages=user("[[delay_ms:120]]"))
    assert time.perf_counter() - started >= 0.12


def test_no_delayed_ack_stall_on_keep_alive(openai_client: openai.OpenAI) -> None:
    openai_client.chat.completions.create(model=GPT, messages=user("warm up"))
    durations = []
    for _ in range(15):
        started = time.perf_counter()
        openai_client.chat.completions.create(model=GPT, messages=user("ping"))
        durations.append(time.perf_counter() - started)
    assert statistics.median(durations) < 0.02


def test_malformed_json_and_unknown_paths(server: TestServer) -> None:
    status, body = post(server.openai_base_url + "/chat/completions", b"{not json")
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    status, body = post(server.url + "/v1/messages", b"[1, 2")
    assert status == 400 and body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert [(e.api, e.status, e.request_body) for e in server.requests] == [
        ("openai", 400, None),
        ("anthropic", 400, None),
    ]
    status, body = post(server.url + "/v1/nothing", b"{}")
    assert status == 404 and body["error"]["type"] == "not_found_error"


def test_keep_alive_expect_and_chunked_request_bodies(server: TestServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port)
    try:
        body = json.dumps({"model": GPT, "messages": user("[[reply:ok]]"), "stream": True}).encode()
        connection.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        streamed = connection.getresponse().read()
        first_socket = connection.sock
        assert streamed.endswith(b"data: [DONE]\n\n")
        connection.request(
            "POST",
            "/v1/chat/completions",
            iter([body[:10], body[10:]]),
            {"Expect": "100-continue"},
            encode_chunked=True,
        )
        response = connection.getresponse()
        assert response.status == 200 and b"chat.completion.chunk" in response.read()
        assert connection.sock is first_socket  # the same connection served both
    finally:
        connection.close()


def test_exchanges_and_reset_over_http(server: TestServer, openai_client: openai.OpenAI) -> None:
    openai_client.chat.completions.create(model=GPT, messages=user("[[reply:remote]]"))
    with urllib.request.urlopen(server.url + "/_agentprof/exchanges") as response:
        [remote] = json.loads(response.read())
    assert RecordedExchange(**remote) == server.requests[0]
    assert post(server.url + "/_agentprof/reset", b"") == (200, {"status": "ok"})
    assert server.requests == []


def test_concurrent_requests_are_all_recorded(server: TestServer, openai_client: openai.OpenAI) -> None:
    def call(index: int) -> None:
        openai_client.chat.completions.create(model=GPT, messages=user(f"[[reply:r{index}]]"))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(e.output_text for e in server.requests) == sorted(f"r{i}" for i in range(12))


def test_module_runs_in_the_foreground() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "agentprof.testserver", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("agentprof test server listening on http://127.0.0.1:")
        with urllib.request.urlopen(line.rsplit(" ", 1)[1].strip() + "/health") as response:
            assert response.status == 200
    finally:
        process.terminate()
        process.wait(timeout=5)
        if process.stdout is not None:
            process.stdout.close()


def test_a_client_resetting_mid_request_prints_no_traceback(
    server: TestServer, capfd: pytest.CaptureFixture[str]
) -> None:
    body = json.dumps({"model": GPT, "messages": [user("hi")]}).encode()
    with socket.create_connection((server.host, server.port), timeout=10) as client:
        client.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n" + body
        )
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends an RST
    httpd = server._httpd
    assert httpd is not None
    deadline = time.monotonic() + 10
    while httpd.connections and time.monotonic() < deadline:  # the handler has finished with the socket
        time.sleep(0.01)
    assert not httpd.connections
    assert post(server.openai_base_url + "/chat/completions", body)[0] == 200  # still serving
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "Exception occurred" not in captured.err
