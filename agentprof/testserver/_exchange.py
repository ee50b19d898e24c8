"""The ground-truth record of one model request, kept by the server for tests."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class RecordedExchange:
    """One model request as the server saw and answered it: the ground truth for tests.

    Attributes:
        api: ``"openai"`` or ``"anthropic"``.
        path: Request path, e.g. ``/v1/chat/completions``.
        model: Requested model, or None if the body had none.
        stream: Whether the client asked for a stream.
        status: HTTP status sent.
        usage: The usage object exactly as sent (provider's JSON shape; for an Anthropic stream the
            ``message_start`` usage updated by ``message_delta``), or None for errors and for streams
            that carried no usage.
        request_body: The parsed JSON body (None if it was not JSON).
        output_text: Reply text sent (for an interrupted stream, the part that was sent).
        time: The server clock when the request arrived.
    """

    api: str
    path: str
    model: str | None
    stream: bool
    status: int
    usage: dict[str, Any] | None
    request_body: Any
    output_text: str
    time: float
