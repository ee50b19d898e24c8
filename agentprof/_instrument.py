"""``instrument()`` / ``uninstrument()``: patch every supported provider SDK that is installed.

The core never imports a provider SDK or an integration at import time; this module imports
them only when asked, and skips SDKs that are not installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading

from agentprof import _runtime, _safety

#: SDK module name -> integration module implementing instrument()/uninstrument().
SUPPORTED_SDKS: dict[str, str] = {
    "openai": "agentprof.integrations.openai",
    "anthropic": "agentprof.integrations.anthropic",
    "google.genai": "agentprof.integrations.google_genai",
    "langgraph": "agentprof.integrations.langgraph",
    # ``agents`` is a common name: the OpenAI Agents SDK is the one with a ``tracing`` package.
    "agents.tracing": "agentprof.integrations.openai_agents",
    "pydantic_ai": "agentprof.integrations.pydantic_ai",
}

_lock = threading.Lock()


def _installed(sdk: str) -> bool:
    """Whether ``sdk`` can be imported, without importing it.

    ``find_spec`` of a dotted name (``google.genai``) imports the parent package and raises
    when that is missing, instead of returning ``None``.
    """
    try:
        return importlib.util.find_spec(sdk) is not None
    except (ImportError, ValueError):
        return False


def instrument() -> list[str]:
    """Configure with defaults if needed, then instrument every installed supported SDK.

    Idempotent. Returns the names of the SDKs that are instrumented.
    """
    _runtime.ensure_configured()
    done: list[str] = []
    with _lock:
        for sdk, integration in SUPPORTED_SDKS.items():
            if not _installed(sdk):
                continue
            try:
                importlib.import_module(integration).instrument()
                done.append(sdk)
            except Exception as exc:
                _safety.internal_error(f"instrument.{sdk}", exc)
    return done


def uninstrument() -> None:
    """Undo :func:`instrument`: every patched SDK method is restored to the original."""
    with _lock:
        for sdk, integration in SUPPORTED_SDKS.items():
            if not _installed(sdk):
                continue
            try:
                importlib.import_module(integration).uninstrument()
            except Exception as exc:
                _safety.internal_error(f"uninstrument.{sdk}", exc)
