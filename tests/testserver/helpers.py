"""Shared helpers for the test-server tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

# Models the anthropic SDK does not flag as deprecated (a DeprecationWarning is an error under our pytest config).
CLAUDE = "claude-sonnet-4-6"
GPT = "gpt-4o-mini"


class FakeClock:
    """A monotonic clock that only moves when told, so cache TTLs expire without sleeping."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """POST raw bytes and return the status and the decoded JSON body, errors included."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())
