"""``instrument()`` / ``uninstrument()``: patch every supported SDK and framework the program uses.

The core never imports a provider SDK, a framework or an integration at import time, and
``instrument()`` does not either: an SDK the program has already imported is patched at once;
one that is installed but not imported yet is patched the moment the program imports it (a
post-import hook). Importing every installed SDK and framework up front took four seconds here
(google-genai, LangGraph, the Agents SDK, pydantic-ai), paid by every process started under
``agentprof run`` whether it used them or not.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from collections.abc import Callable
from types import ModuleType

from agentprof import _runtime, _safety

#: Module whose import triggers the integration -> integration implementing instrument()/uninstrument().
SUPPORTED_SDKS: dict[str, str] = {
    "openai": "agentprof.integrations.openai",
    "anthropic": "agentprof.integrations.anthropic",
    "google.genai": "agentprof.integrations.google_genai",
    "langgraph": "agentprof.integrations.langgraph",
    "agents": "agentprof.integrations.openai_agents",
    "pydantic_ai": "agentprof.integrations.pydantic_ai",
}

#: ``agents`` is a common package name: the OpenAI Agents SDK is the one with this module.
_REQUIRED_SUBMODULE = {"agents": "agents.tracing"}

_lock = threading.Lock()
_wanted = False  # between instrument() and uninstrument()
_hooked: set[str] = set()  # SDKs with a post-import hook registered (hooks cannot be removed)
_instrumented: set[str] = set()


def _installed(sdk: str) -> bool:
    """Whether ``sdk`` can be imported, without importing it.

    ``find_spec`` of a dotted name (``google.genai``) imports the parent package and raises
    when that is missing, instead of returning ``None``.
    """
    try:
        return importlib.util.find_spec(sdk) is not None
    except (ImportError, ValueError):
        return False


def _instrument_one(sdk: str) -> bool:
    """Patch one imported SDK (idempotent); ``False`` if it is not the SDK we support."""
    required = _REQUIRED_SUBMODULE.get(sdk)
    if required is not None and not _installed(required):
        return False
    try:
        importlib.import_module(SUPPORTED_SDKS[sdk]).instrument()
    except Exception as exc:
        _safety.internal_error(f"instrument.{sdk}", exc)
        return False
    _instrumented.add(sdk)
    return True


def _on_import(sdk: str) -> None:
    """Post-import hook: the program just imported ``sdk``; patch it if instrumentation is on."""
    if _wanted and sdk not in _instrumented:
        _instrument_one(sdk)


def instrument() -> list[str]:
    """Configure with defaults if needed, then instrument every supported SDK the program uses.

    Idempotent. SDKs already imported are patched now; installed ones are patched when the
    program imports them. Returns the SDKs patched now, then those waiting for their import.
    """
    global _wanted
    import wrapt

    _runtime.ensure_configured()
    now: list[str] = []
    pending: list[str] = []
    with _lock:
        _wanted = True
        for sdk in SUPPORTED_SDKS:
            if sdk in sys.modules:
                if _instrument_one(sdk):
                    now.append(sdk)
            elif _installed(sdk):
                pending.append(sdk)
                if sdk not in _hooked:
                    _hooked.add(sdk)
                    wrapt.register_post_import_hook(_hook_for(sdk), sdk)
    return now + pending


def _hook_for(sdk: str) -> Callable[[ModuleType], None]:
    def hook(module: ModuleType) -> None:
        _on_import(sdk)

    return hook


def uninstrument() -> None:
    """Undo :func:`instrument`: every patched SDK method is restored, and pending hooks do nothing."""
    global _wanted
    with _lock:
        _wanted = False
        for sdk in list(_instrumented):
            try:
                importlib.import_module(SUPPORTED_SDKS[sdk]).uninstrument()
            except Exception as exc:
                _safety.internal_error(f"uninstrument.{sdk}", exc)
            _instrumented.discard(sdk)
