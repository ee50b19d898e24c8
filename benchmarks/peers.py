"""Time agentprof and its peers add to each OpenAI and Anthropic SDK call, against the bare SDK, in one process.

Run by hand from the repository root (never collected as a test), with any Python:

    python benchmarks/peers.py                         # non-streaming: 40 rounds x 100 calls per variant (~2.5 min)
    python benchmarks/peers.py --groups openai,openai-stream   # also streaming (~5 min)
    python benchmarks/peers.py --groups anthropic,anthropic-stream  # the Anthropic SDK's peers
    python benchmarks/peers.py --json peers.json       # also write every figure and per-round medians
    python benchmarks/peers.py --setup-only            # only create/check the peers' virtualenv

The peers cannot live in the project's virtualenv (OpenLLMetry and the official GenAI
instrumentation both ship ``opentelemetry.instrumentation.*openai`` packages and pull their
own dependencies), so the script is two programs:

* the **driver** (what you run) creates or reuses a separate virtualenv (``--venv``, default
  ``/tmp/agentprof-peers-venv``) with the same ``openai`` and ``opentelemetry-sdk`` versions as
  the Python running the driver, the pinned peers (:data:`PEERS`) and agentprof itself
  (``pip install -e`` of this repository), then runs itself there with ``--worker``;
* the **worker** measures every variant in ONE process, against one local model server
  (``python -m agentprof.testserver --port 0 --no-prompt-cache``, a separate process).

Variants, interleaved in blocks of ``--block`` calls (A B C ..., ... C B A, A B C ...) so that
every variant of a round spans the same seconds on this drifting machine:

* ``bare``: the SDK, nothing instrumented;
* ``otel-span``: one hand-made OpenTelemetry SDK span around the bare call, 4 attributes at
  creation + 4 set after the call (as in ``overhead.py``): "one bare SDK span with 8 attributes";
* ``agentprof``: ``agentprof.instrument()`` before the block, the calls inside one
  ``agentprof.task``, ``agentprof.uninstrument()`` after;
* ``openinference``, ``openllmetry``, ``genai-openai``: the peer's ``OpenAIInstrumentor()``
  (for the ``anthropic`` workloads OpenInference's and OpenLLMetry's ``AnthropicInstrumentor()``:
  the official GenAI instrumentation and Langfuse's drop-in cover only the openai SDK)
  ``.instrument(tracer_provider=<its own provider>)`` before the block, ``.uninstrument()`` after,
  default settings (content capture as each ships it). Each is first tried once: if its
  ``uninstrument()`` does not restore the SDK (OpenLLMetry 0.62.4 with
  opentelemetry-instrumentation 0.66b2: its ``unwrap("module", "Class.method")`` calls no longer
  match ``unwrap(obj, attr)`` and restore nothing), the wrappers its ``instrument()`` installed are
  swapped in and out around each block instead (:class:`Swap`), which the worker says;
* ``langfuse``: the documented drop-in (``from langfuse.openai import openai``) with a
  ``Langfuse`` client whose span exporter is replaced (``span_exporter=``) and whose base URL is a
  closed local port. Importing ``langfuse.openai`` wraps the SDK for good (it has no
  uninstrument); the worker records exactly what that import replaced and swaps those class
  attributes in before the block and back out after it.

Every span-producing variant has its own ``TracerProvider`` and ``BatchSpanProcessor`` (Langfuse:
its own ``LangfuseSpanProcessor``, a ``BatchSpanProcessor`` subclass) with a never-firing timer
and a counting no-op exporter; each is flushed at the end of every round, untimed, so export work
is in CPU/call but never in another variant's block. After every block the worker checks that the
OpenAI and Anthropic SDKs' classes are exactly as before the benchmark (a peer whose uninstrument does not
restore them stops the run), and at the end that every variant recorded at least one span per
call (agentprof: model-call rows in its spool); otherwise it prints ``MISMATCH`` and exits 1.

Figures are as in ``overhead.py``: median / mean / p99 per call, CPU and GC per call, and against
``bare`` of the same round the added median (median over rounds of the per-round median
difference, with its 25th..75th percentile), the paired ratio, added mean and added CPU. Then the
two targets of issue 6 for non-streaming calls: agentprof added <= lightest peer's added / 3, and
agentprof added <= 2 x otel-span added.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import importlib
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_VENV = Path("/tmp/agentprof-peers-venv")
# Pinned so that runs compare; bump together with the figures in benchmarks/README.md.
PEERS = {
    "openinference-instrumentation-openai": "0.1.66",  # OpenInference (Arize)
    "opentelemetry-instrumentation-openai": "0.62.4",  # OpenLLMetry (Traceloop)
    "opentelemetry-instrumentation-genai-openai": "1.3b0",  # official OpenTelemetry GenAI
    "openinference-instrumentation-anthropic": "3.1.0",
    "opentelemetry-instrumentation-anthropic": "0.62.4",  # OpenLLMetry
    "langfuse": "5.0.4",
}
SHOWN_VERSIONS = (
    "openai",
    "anthropic",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "agentprof",
    *PEERS,
    "openinference-instrumentation",
    "opentelemetry-util-genai",
    "opentelemetry-semantic-conventions-ai",
    "opentelemetry-instrumentation",
    "wrapt",
    "httpx",
    "pydantic",
)
OPENAI_MODEL = "gpt-4o-mini"
ANTHROPIC_MODEL = "claude-haiku-4-5"
GROUPS = ("openai", "openai-stream", "anthropic", "anthropic-stream")
#: The peers that instrument each SDK (genai-openai and Langfuse's drop-in wrap only openai).
SDK_PEERS = {
    "openai": ("openinference", "openllmetry", "genai-openai", "langfuse"),
    "anthropic": ("openinference", "openllmetry"),
}
SDK_MODULES = ("openai", "anthropic")
VARIANTS = ("bare", "otel-span", "agentprof", "openinference", "openllmetry", "genai-openai", "langfuse")
PEER_VARIANTS = ("openinference", "openllmetry", "genai-openai", "langfuse")


# ==================================================================================================
# driver: the peers' virtualenv
# ==================================================================================================
def _installed_version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def requirements() -> list[str]:
    """What the peers' virtualenv holds (agentprof itself is added as an editable install)."""
    reqs = []
    for package in ("openai", "anthropic", "opentelemetry-api", "opentelemetry-sdk"):
        pinned = _installed_version(package)  # the driver's (project) virtualenv decides
        reqs.append(f"{package}=={pinned}" if pinned else package)
    reqs += [f"{package}=={pinned}" for package, pinned in PEERS.items()]
    return reqs


def ensure_venv(venv: Path, *, reinstall: bool) -> Path:
    """Create or reuse the peers' virtualenv; returns its python."""
    python = venv / "bin" / "python"
    reqs = requirements()
    spec = "\n".join([*reqs, f"-e {REPO}"]) + "\n"
    marker = venv / "agentprof-peers-requirements.txt"
    if python.exists() and not reinstall and marker.exists() and marker.read_text() == spec:
        print(f"reusing {venv} ({hashlib.sha1(spec.encode()).hexdigest()[:8]})", flush=True)
        return python
    if not python.exists():
        print(f"creating {venv}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    print(f"installing into {venv}: {' '.join(reqs)} -e {REPO}", flush=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *reqs, "-e", str(REPO)],
        check=True,
    )
    marker.write_text(spec)
    return python


def run_driver(argv: list[str], args: argparse.Namespace) -> int:
    python = ensure_venv(args.venv, reinstall=args.reinstall)
    if args.setup_only:
        subprocess.run([str(python), "-m", "pip", "list", "--disable-pip-version-check"], check=True)
        return 0
    return subprocess.run([str(python), str(Path(__file__).resolve()), "--worker", *argv]).returncode


# ==================================================================================================
# worker: runs in the peers' virtualenv, everything in this one process
# ==================================================================================================
@dataclass
class Variant:
    group: str
    name: str
    call: Callable[[], int]  # one model call; returns the number of stream chunks read
    enable: Callable[[], object] | None = None  # before each block
    disable: Callable[[], object] | None = None  # after each block
    scope: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    flush: Callable[[], object] | None = None  # drains this variant's span processor after a round
    exported: Callable[[], int] | None = None  # spans exported so far by this variant's exporter
    records: int = 0  # spans (or agentprof model-call rows) attributed to this variant, warm-up included
    times_ns: list[int] = field(default_factory=list)
    round_median_ns: list[float] = field(default_factory=list)
    round_mean_ns: list[float] = field(default_factory=list)
    round_cpu_ns: list[float] = field(default_factory=list)  # per call
    round_flush_ns: list[int] = field(default_factory=list)
    round_gc_ns: list[float] = field(default_factory=list)  # per call
    full_collections: int = 0
    cur_times: list[int] = field(default_factory=list)
    cur_cpu_ns: int = 0
    cur_gc_ns: int = 0
    cur_full: int = 0
    cur_chunks: int = 0
    chunks: int = 0
    calls_made: int = 0  # warm-up included


def sdk_of(group: str) -> str:
    """The SDK a workload calls: ``openai`` or ``anthropic``."""
    return group.split("-", 1)[0]


class SdkState:
    """Every class attribute of the loaded ``openai`` and ``anthropic`` modules: did an uninstrument restore them?"""

    _MISSING = object()
    # caches Python and pydantic fill in lazily: not instrumentation
    CACHES = frozenset({"__slotnames__", "__signature__", "_abc_impl"})

    def __init__(self) -> None:
        self.classes = sorted(
            {
                obj
                for name, module in list(sys.modules.items())
                if name.split(".", 1)[0] in SDK_MODULES and name.split(".", 2)[1:2] != ["types"] and module is not None
                for obj in vars(module).values()
                if inspect.isclass(obj) and obj.__module__ == name
            },
            key=lambda c: (c.__module__, c.__qualname__),
        )
        self.before = self.snapshot()

    @classmethod
    def _is_cache(cls, name: str) -> bool:
        return name in cls.CACHES or name.startswith("__pydantic")

    def snapshot(self) -> dict[type, dict[str, Any]]:
        return {cls: dict(vars(cls)) for cls in self.classes}

    def _resolved_before(self, cls: type, name: str) -> Any:
        for klass in cls.__mro__:
            if klass in self.before:
                if name in self.before[klass]:
                    return self.before[klass][name]
            elif name in vars(klass):
                return vars(klass)[name]
        return self._MISSING

    def changed(self, baseline: dict[type, dict[str, Any]] | None = None) -> list[str]:
        """Attributes that differ from ``baseline`` (default: the state before the benchmark).

        Compared by identity (a wrapt proxy compares equal to what it wraps). Against the initial
        state, an attribute copied from a base class into a subclass (OpenInference restores
        ``OpenAI.request`` that way) counts as unchanged when it resolves to the same object.
        """
        base = self.before if baseline is None else baseline
        out = []
        for cls in self.classes:
            old, now = base[cls], vars(cls)
            for name in old.keys() | now.keys():
                if old.get(name, self._MISSING) is now.get(name, self._MISSING) or self._is_cache(name):
                    continue
                if baseline is None and self._resolved_before(cls, name) is inspect.getattr_static(
                    cls, name, self._MISSING
                ):
                    continue
                out.append(f"{cls.__module__}.{cls.__qualname__}.{name}")
        return sorted(out)


def provider_with_null_exporter(name: str) -> tuple[Any, Any, Any]:
    from _harness import EXPORT_NEVER_MS, NullExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporter = NullExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": f"peers-bench-{name}"}))
    processor = BatchSpanProcessor(exporter, schedule_delay_millis=EXPORT_NEVER_MS)
    provider.add_span_processor(processor)
    return provider, processor, exporter


def build_variants(url: str, args: argparse.Namespace, state_holder: list[SdkState]) -> dict[str, list[Variant]]:
    import anthropic
    import openai
    from _harness import NullExporter, anthropic_stream, openai_stream
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanKind

    import agentprof

    sdks = {sdk_of(group) for group in args.groups}
    # load every module a peer patches, so that the state checks below see their classes
    for module in (
        "openai._base_client",
        "openai._streaming",
        "openai.resources.chat.completions",
        "openai.resources.completions",
        "openai.resources.embeddings",
        "openai.resources.images",
        "openai.resources.responses.responses",
        "openai.resources.beta",
        "openai.lib.streaming.chat",
        "anthropic._streaming",
        "anthropic.resources.messages.messages",
        "anthropic.resources.beta.messages.messages",
        "anthropic.lib.streaming",
    ):
        with contextlib.suppress(ImportError):
            importlib.import_module(module)

    system = ("You are a careful support agent. Follow the policy and cite the ticket. " * 200)[: args.prompt_chars]
    oa = openai.OpenAI(base_url=url + "/v1", api_key="bench", max_retries=0)
    an = anthropic.Anthropic(base_url=url, api_key="bench", max_retries=0)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Summarise ticket 4711."}]
    stream_messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": f"Summarise ticket 4711. [[chunks:{args.chunks}]]"},
    ]
    an_messages = [{"role": "user", "content": "Summarise ticket 4711."}]
    an_stream_messages = [{"role": "user", "content": f"Summarise ticket 4711. [[chunks:{args.chunks}]]"}]
    host = url.split("://", 1)[1].split(":", 1)[0]

    def openai_call() -> int:
        oa.chat.completions.create(model=OPENAI_MODEL, messages=messages, temperature=0.2, max_tokens=64)
        return 0

    stream_call = openai_stream(oa, OPENAI_MODEL, stream_messages)

    def anthropic_call() -> int:
        an.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, system=system, messages=an_messages)
        return 0

    anthropic_stream_call = anthropic_stream(an, ANTHROPIC_MODEL, system, an_stream_messages)

    # --- otel-span: one hand-made SDK span with 8 attributes ---
    otel_provider, otel_processor, otel_exporter = provider_with_null_exporter("otel-span")
    tracer = otel_provider.get_tracer("peers-bench")

    def request_attributes(provider: str, model: str) -> dict[str, str]:
        return {
            "gen_ai.operation.name": "chat",
            "gen_ai.provider.name": provider,
            "gen_ai.request.model": model,
            "server.address": host,
        }

    openai_attributes = request_attributes("openai", OPENAI_MODEL)
    anthropic_attributes = request_attributes("anthropic", ANTHROPIC_MODEL)

    def otel_call() -> int:
        with tracer.start_as_current_span(
            f"chat {OPENAI_MODEL}", kind=SpanKind.CLIENT, attributes=openai_attributes
        ) as span:
            response = oa.chat.completions.create(model=OPENAI_MODEL, messages=messages, temperature=0.2, max_tokens=64)
            usage = response.usage
            span.set_attributes(
                {
                    "gen_ai.response.model": response.model,
                    "gen_ai.response.id": response.id,
                    "gen_ai.usage.input_tokens": usage.prompt_tokens if usage else 0,
                    "gen_ai.usage.output_tokens": usage.completion_tokens if usage else 0,
                }
            )
        return 0

    def otel_stream_call() -> int:
        with tracer.start_as_current_span(
            f"chat {OPENAI_MODEL}", kind=SpanKind.CLIENT, attributes=openai_attributes
        ) as span:
            stream = oa.chat.completions.create(
                model=OPENAI_MODEL,
                messages=stream_messages,
                temperature=0.2,
                max_tokens=64,
                stream=True,
                stream_options={"include_usage": True},
            )
            n = 0
            last = None
            for chunk in stream:
                n += 1
                last = chunk
            usage = last.usage if last is not None else None
            span.set_attributes(
                {
                    "gen_ai.response.model": last.model if last is not None else "",
                    "gen_ai.response.id": last.id if last is not None else "",
                    "gen_ai.usage.input_tokens": usage.prompt_tokens if usage else 0,
                    "gen_ai.usage.output_tokens": usage.completion_tokens if usage else 0,
                }
            )
        return n

    def otel_anthropic_call() -> int:
        with tracer.start_as_current_span(
            f"chat {ANTHROPIC_MODEL}", kind=SpanKind.CLIENT, attributes=anthropic_attributes
        ) as span:
            response = an.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, system=system, messages=an_messages)
            span.set_attributes(
                {
                    "gen_ai.response.model": response.model,
                    "gen_ai.response.id": response.id,
                    "gen_ai.usage.input_tokens": response.usage.input_tokens,
                    "gen_ai.usage.output_tokens": response.usage.output_tokens,
                }
            )
        return 0

    def otel_anthropic_stream_call() -> int:
        with tracer.start_as_current_span(
            f"chat {ANTHROPIC_MODEL}", kind=SpanKind.CLIENT, attributes=anthropic_attributes
        ) as span:
            stream = an.messages.create(
                model=ANTHROPIC_MODEL, max_tokens=64, system=system, messages=an_stream_messages, stream=True
            )
            n = 0
            model = response_id = ""
            input_tokens = output_tokens = 0
            for event in stream:
                n += 1
                if event.type == "message_start":
                    model, response_id = event.message.model, event.message.id
                    input_tokens = event.message.usage.input_tokens
                elif event.type == "message_delta":
                    output_tokens = event.usage.output_tokens
            span.set_attributes(
                {
                    "gen_ai.response.model": model,
                    "gen_ai.response.id": response_id,
                    "gen_ai.usage.input_tokens": input_tokens,
                    "gen_ai.usage.output_tokens": output_tokens,
                }
            )
        return n

    # --- the OpenTelemetry-instrumentor peers, each with its own provider per SDK. Each one is tried
    # once: if uninstrument() restores the SDK, it is instrumented/uninstrumented around every block;
    # if not, the wrappers its instrument() installed are swapped in and out (see Swap). ---
    instrumentors: dict[tuple[str, str], Any] = {}
    if "openai" in sdks:
        from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInferenceInstrumentor
        from opentelemetry.instrumentation.genai.openai import OpenAIInstrumentor as GenAIInstrumentor
        from opentelemetry.instrumentation.openai import OpenAIInstrumentor as OpenLLMetryInstrumentor

        instrumentors[("openinference", "openai")] = OpenInferenceInstrumentor
        instrumentors[("openllmetry", "openai")] = OpenLLMetryInstrumentor
        instrumentors[("genai-openai", "openai")] = GenAIInstrumentor
    if "anthropic" in sdks:
        from openinference.instrumentation.anthropic import AnthropicInstrumentor as OpenInferenceAnthropic
        from opentelemetry.instrumentation.anthropic import AnthropicInstrumentor as OpenLLMetryAnthropic

        instrumentors[("openinference", "anthropic")] = OpenInferenceAnthropic
        instrumentors[("openllmetry", "anthropic")] = OpenLLMetryAnthropic
    toggles: dict[tuple[str, str], tuple[Callable[[], object], Callable[[], object]]] = {}
    flushes: dict[tuple[str, str], tuple[Callable[[], object], Any]] = {}
    for (name, sdk), cls in instrumentors.items():
        if name not in args.variants:
            continue
        label = f"{name} ({sdk})"
        provider, processor, exporter = provider_with_null_exporter(f"{name}-{sdk}")
        instrumentor = cls()
        pre = SdkState()
        instrumentor.instrument(tracer_provider=provider)
        wrapped = pre.changed()
        instrumentor.uninstrument()
        left = pre.changed()
        if not wrapped:
            raise RuntimeError(f"{label}: instrument() changed nothing in the {sdk} SDK")
        if left:
            swap = Swap(pre)  # the wrappers still in place are the ones instrument() installed
            toggles[(name, sdk)] = (swap.enable, swap.disable)
            TOGGLE_NOTES.append(
                f"{label}: uninstrument() left {len(left)} of the {len(wrapped)} attributes it wrapped in place "
                f"(e.g. {left[0]}); its wrappers are swapped in and out around each block instead"
            )
        else:

            def enable(instrumentor: Any = instrumentor, provider: Any = provider) -> None:
                instrumentor.instrument(tracer_provider=provider)

            toggles[(name, sdk)] = (enable, instrumentor.uninstrument)
            TOGGLE_NOTES.append(
                f"{label}: instrument(tracer_provider=own provider) / uninstrument() around each block "
                f"({len(wrapped)} attributes wrapped, all restored)"
            )
        flushes[(name, sdk)] = (processor.force_flush, exporter)

    # --- Langfuse: a client that exports into a no-op exporter, then the drop-in's patches ---
    if "openai" in sdks and "langfuse" in args.variants:
        from langfuse import Langfuse

        langfuse_exporter = NullExporter()
        langfuse_client = Langfuse(
            public_key="pk-lf-peers-bench",
            secret_key="sk-lf-peers-bench",
            base_url="http://127.0.0.1:9",  # discard port, nothing listens: no request is ever sent there
            tracer_provider=TracerProvider(),
            span_exporter=langfuse_exporter,
            flush_interval=3600.0,  # export only when the benchmark flushes
        )
        pre = SdkState()
        importlib.import_module("langfuse.openai")  # wraps Completions.create & co. and Stream.__iter__ for good
        swap = Swap(pre)
        toggles[("langfuse", "openai")] = (swap.enable, swap.disable)
        flushes[("langfuse", "openai")] = (langfuse_client.flush, langfuse_exporter)
        TOGGLE_NOTES.append(
            "langfuse: `import langfuse.openai` wraps for good (no uninstrument); what it replaced is swapped in and "
            "out around each block: "
            + ", ".join(f"{cls.__module__}.{cls.__qualname__}.{attr}" for cls, attr, _, _ in swap.patches)
        )
    state_holder.append(SdkState())  # the SDKs as the benchmark starts: every block must leave them so

    def make(group: str, name: str, bare_call: Callable[[], int], span_call: Callable[[], int]) -> Variant:
        if name == "bare":
            return Variant(group, name, bare_call)
        if name == "otel-span":
            return Variant(
                group,
                name,
                span_call,
                flush=otel_processor.force_flush,
                exported=lambda: otel_exporter.spans,
            )
        if name == "agentprof":
            return Variant(
                group,
                name,
                bare_call,
                enable=agentprof.instrument,
                disable=agentprof.uninstrument,
                scope=lambda: agentprof.task("peers-bench"),
                flush=agentprof.flush,
            )
        enable, disable = toggles[(name, sdk_of(group))]
        flush, exporter = flushes[(name, sdk_of(group))]
        return Variant(
            group,
            name,
            bare_call,
            enable=enable,
            disable=disable,
            flush=flush,
            exported=lambda: exporter.spans,
        )

    calls = {
        "openai": (openai_call, otel_call),
        "openai-stream": (stream_call, otel_stream_call),
        "anthropic": (anthropic_call, otel_anthropic_call),
        "anthropic-stream": (anthropic_stream_call, otel_anthropic_stream_call),
    }
    return {
        group: [
            make(group, name, *calls[group])
            for name in args.variants
            if name in ("bare", "otel-span", "agentprof") or name in SDK_PEERS[sdk_of(group)]
        ]
        for group in args.groups
    }


class Swap:
    """Toggle patches that cannot be undone by their library: swap the patched attributes in and out.

    Built right after the library patched the SDK, against the :class:`SdkState` taken before:
    every class attribute that differs is recorded with its patched and original value, then the
    originals are put back. :meth:`enable` re-installs the very wrapper objects the library made.
    """

    def __init__(self, before: SdkState) -> None:
        after = before.snapshot()
        missing = SdkState._MISSING
        self.patches = [
            (cls, attr, after[cls].get(attr, missing), before.before[cls].get(attr, missing))
            for cls in before.classes
            for attr in sorted(before.before[cls].keys() | after[cls].keys())
            if before.before[cls].get(attr, missing) is not after[cls].get(attr, missing)
            and not SdkState._is_cache(attr)
        ]
        if not self.patches:
            raise RuntimeError("nothing to swap: the library patched nothing in the SDKs")
        self.disable()

    def _put(self, index: int) -> None:
        for patch in self.patches:
            cls, attr, value = patch[0], patch[1], patch[index]
            if value is SdkState._MISSING:
                if attr in vars(cls):
                    delattr(cls, attr)
            else:
                setattr(cls, attr, value)

    def enable(self) -> None:
        self._put(2)

    def disable(self) -> None:
        self._put(3)


TOGGLE_NOTES: list[str] = []


class SdkNotRestored(RuntimeError):
    pass


def run_block(variant: Variant, calls: int, state: SdkState, *, check_enabled: bool) -> None:
    from _harness import GC

    times = [0] * calls
    chunks = 0
    call = variant.call
    perf = time.perf_counter_ns
    if variant.enable is not None:
        variant.enable()
        if check_enabled and not state.changed():
            raise SdkNotRestored(f"{variant.group} {variant.name}: instrumenting changed nothing in the SDKs")
    gc0, full0 = GC.total_ns, GC.full
    cpu0 = time.process_time_ns()
    try:
        with variant.scope():
            for i in range(calls):
                t0 = perf()
                chunks += call()
                times[i] = perf() - t0
    finally:
        if variant.disable is not None:
            variant.disable()
    variant.cur_cpu_ns += time.process_time_ns() - cpu0
    variant.cur_gc_ns += GC.total_ns - gc0
    variant.cur_full += GC.full - full0
    variant.cur_times.extend(times)
    variant.cur_chunks += chunks
    variant.calls_made += calls
    if variant.enable is not None:
        left = state.changed()
        if left:
            raise SdkNotRestored(
                f"{variant.group} {variant.name}: uninstrument left the SDKs changed: {', '.join(left[:8])}"
            )


def finish_round(variant: Variant, *, record: bool) -> None:
    from _harness import GC, close_round

    gc0, full0 = GC.total_ns, GC.full
    cpu0 = time.process_time_ns()
    f0 = time.perf_counter_ns()
    before = variant.exported() if variant.exported is not None else 0
    if variant.flush is not None:
        variant.flush()
    flush_ns = time.perf_counter_ns() - f0
    if variant.exported is not None:
        variant.records += variant.exported() - before
    variant.cur_cpu_ns += time.process_time_ns() - cpu0
    variant.cur_gc_ns += GC.total_ns - gc0
    variant.cur_full += GC.full - full0
    close_round(variant, flush_ns, record=record)


def run_round(variants: list[Variant], calls: int, block: int, state: SdkState, *, record: bool) -> None:
    sizes = [min(block, calls - done) for done in range(0, calls, block)]
    for index, size in enumerate(sizes):
        for variant in variants if index % 2 == 0 else reversed(variants):
            run_block(variant, size, state, check_enabled=not record)
    for variant in variants:
        finish_round(variant, record=record)


def summarise(variant: Variant, bare: Variant) -> dict[str, Any]:
    from _harness import percentile

    us = 1e-3
    result: dict[str, Any] = {
        "group": variant.group,
        "variant": variant.name,
        "calls": len(variant.times_ns),
        "median_us": statistics.median(variant.times_ns) * us,
        "mean_us": statistics.fmean(variant.times_ns) * us,
        "p99_us": percentile(variant.times_ns, 99) * us,
        "cpu_per_call_us": statistics.median(variant.round_cpu_ns) * us,
        "flush_ms_per_round": statistics.median(variant.round_flush_ns) * 1e-6,
        "gc_per_call_us": statistics.fmean(variant.round_gc_ns) * us,
        "full_collections": variant.full_collections,
        "calls_made": variant.calls_made,
        "records": variant.records,
        "round_median_us": [m * us for m in variant.round_median_ns],
    }
    if variant.chunks:
        result["chunks_per_call"] = variant.chunks / len(variant.times_ns)
    if variant is not bare:
        added = [v - b for v, b in zip(variant.round_median_ns, bare.round_median_ns, strict=True)]
        result["round_added_us"] = [a * us for a in added]
        result["added_median_us"] = statistics.median(added) * us
        result["added_p25_us"] = percentile(added, 25) * us
        result["added_p75_us"] = percentile(added, 75) * us
        result["ratio"] = statistics.median(
            v / b for v, b in zip(variant.round_median_ns, bare.round_median_ns, strict=True)
        )
        result["added_mean_us"] = (
            statistics.median(v - b for v, b in zip(variant.round_mean_ns, bare.round_mean_ns, strict=True)) * us
        )
        result["added_cpu_us"] = (
            statistics.median(v - b for v, b in zip(variant.round_cpu_ns, bare.round_cpu_ns, strict=True)) * us
        )
    return result


def spool_model_calls(spool_dir: Path) -> dict[str, int]:
    """agentprof's model-call rows in the spool, keyed like the workload groups."""
    counts = {group: 0 for group in GROUPS}
    for segment in spool_dir.glob("seg-*.jsonl"):
        with open(segment, encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                if row.get("kind") == "model_call":
                    sdk = "anthropic" if row.get("provider") == "anthropic" else "openai"
                    counts[sdk + ("-stream" if row.get("stream") else "")] += 1
    return counts


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'workload':<18}{'variant':<14}{'median':>8}{'mean':>8}{'p99':>8}{'CPU/call':>9}{'GC/call':>8}{'gen2':>5}"
        f"  {'added median [p25..p75]':<28}{'ratio':>7}{'+mean':>8}{'+CPU':>8}{'records/calls':>16}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        line = (
            f"{row['group']:<18}{row['variant']:<14}{row['median_us']:>8.0f}{row['mean_us']:>8.0f}"
            f"{row['p99_us']:>8.0f}{row['cpu_per_call_us']:>9.0f}{row['gc_per_call_us']:>8.0f}{row['full_collections']:>5}"
        )
        if "added_median_us" in row:
            spread = f"{row['added_median_us']:+.0f} [{row['added_p25_us']:+.0f}..{row['added_p75_us']:+.0f}]"
            line += f"  {spread:<28}{row['ratio']:>7.3f}{row['added_mean_us']:>+8.0f}{row['added_cpu_us']:>+8.0f}"
            line += f"{row['records']:>9}/{row['calls_made']:<6}"
        print(line)
    print(
        "µs per call; CPU and GC per call include the end-of-round flush (export); gen2 = full collections; "
        "added = median over rounds of (variant - bare) in the same round; records = spans exported "
        "(agentprof: model-call rows in the spool) / calls made, warm-up included"
    )


def evaluate_targets(rows: list[dict[str, Any]], group: str) -> dict[str, Any] | None:
    by_name = {row["variant"]: row for row in rows if row["group"] == group}
    peers = [by_name[name] for name in PEER_VARIANTS if name in by_name]
    if "agentprof" not in by_name or "otel-span" not in by_name or not peers:
        return None
    agent = by_name["agentprof"]["added_median_us"]
    lightest = min(peers, key=lambda row: row["added_median_us"])
    span = by_name["otel-span"]["added_median_us"]
    # the same comparisons paired round by round, to show how stable the verdict is
    agent_rounds = by_name["agentprof"]["round_added_us"]
    peer_rounds = lightest["round_added_us"]
    span_rounds = by_name["otel-span"]["round_added_us"]
    return {
        "group": group,
        "agentprof_added_us": agent,
        "lightest_peer": lightest["variant"],
        "lightest_peer_added_us": lightest["added_median_us"],
        "peer_limit_us": lightest["added_median_us"] / 3,
        "peer_target_met": agent <= lightest["added_median_us"] / 3,
        "peer_rounds_met": sum(a <= p / 3 for a, p in zip(agent_rounds, peer_rounds, strict=True)),
        "otel_span_added_us": span,
        "span_limit_us": 2 * span,
        "span_target_met": agent <= 2 * span,
        "span_rounds_met": sum(a <= 2 * s for a, s in zip(agent_rounds, span_rounds, strict=True)),
        "rounds": len(agent_rounds),
    }


def print_targets(target: dict[str, Any], *, informational: bool) -> None:
    def verdict(ok: bool) -> str:
        return ("met" if ok else "NOT met") + (" (informational)" if informational else "")

    print(
        f"{target['group']}: agentprof added {target['agentprof_added_us']:+.0f} µs; "
        f"lightest peer {target['lightest_peer']} {target['lightest_peer_added_us']:+.0f} µs, /3 = "
        f"{target['peer_limit_us']:.0f} µs -> {verdict(target['peer_target_met'])} "
        f"[paired: {target['peer_rounds_met']}/{target['rounds']} rounds]"
    )
    print(
        f"{target['group']}: agentprof added {target['agentprof_added_us']:+.0f} µs; "
        f"2 x otel-span ({target['otel_span_added_us']:+.0f} µs) = {target['span_limit_us']:.0f} µs -> "
        f"{verdict(target['span_target_met'])} [paired: {target['span_rounds_met']}/{target['rounds']} rounds]"
    )


def run_worker(args: argparse.Namespace) -> int:
    from _harness import EXPORT_NEVER_MS, ServerProcess

    import agentprof
    from agentprof import _runtime

    started = time.perf_counter()
    versions = {package: _installed_version(package) for package in SHOWN_VERSIONS}
    print(
        f"{datetime.date.today()}  nproc={os.cpu_count()}  python {platform.python_version()}  ({sys.executable})",
        flush=True,
    )
    print("  " + "  ".join(f"{package} {v}" for package, v in versions.items() if v), flush=True)
    server = ServerProcess()
    state_holder: list[SdkState] = []
    with tempfile.TemporaryDirectory(prefix="agentprof-peers-") as tmp:
        try:
            agentprof.configure(db=tmp, service_name="peers-bench", schedule_delay_millis=EXPORT_NEVER_MS)
            runtime = _runtime.get_runtime()
            assert runtime is not None
            spool_dir = runtime.location.spool_dir
            groups = build_variants(server.url, args, state_holder)
            state = state_holder[0]
            for note in TOGGLE_NOTES:
                print(note, flush=True)
            print(
                f"checking {len(state.classes)} openai and anthropic SDK classes after every instrumented block",
                flush=True,
            )
            for variants in groups.values():
                run_round(variants, args.warmup, args.block, state, record=False)
            for round_index in range(args.rounds):
                for variants in groups.values():
                    run_round(variants, args.calls, args.block, state, record=True)
                print(f"round {round_index + 1}/{args.rounds} done ({time.perf_counter() - started:.0f} s)", flush=True)
            agentprof.flush()
            spooled = spool_model_calls(spool_dir)
            agentprof.shutdown()
        except SdkNotRestored as exc:
            print(f"MISMATCH: {exc}")
            return 1
        finally:
            server.stop()

    for group, variants in groups.items():
        for variant in variants:
            if variant.name == "agentprof":
                variant.records = spooled[group]
    rows = [summarise(variant, variants[0]) for variants in groups.values() for variant in variants]
    print()
    print(
        f"{args.rounds} rounds x {args.calls} calls per variant in blocks of {args.block} (+{args.warmup} warm-up), "
        f"system prompt {args.prompt_chars} chars, {args.chunks} content chunks when streamed, "
        f"elapsed {time.perf_counter() - started:.0f} s"
    )
    print()
    print_table(rows)

    targets = []
    print()
    for group in groups:
        target = evaluate_targets(rows, group)
        if target is not None:
            targets.append(target)
            print_targets(target, informational=group.endswith("-stream"))

    bad = [row for row in rows if row["variant"] != "bare" and row["records"] < row["calls_made"]]
    print()
    if bad:
        for row in bad:
            print(f"MISMATCH: {row['group']} {row['variant']} recorded {row['records']} for {row['calls_made']} calls")
    else:
        print("record check: every instrumented variant recorded at least one span/row per call -> OK")

    if args.json is not None:
        payload = {
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": {"nproc": os.cpu_count(), "platform": platform.platform()},
            "python": platform.python_version(),
            "versions": versions,
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
            "results": rows,
            "targets": targets,
            "record_check_ok": not bad,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 1 if bad else 0


# ==================================================================================================
def parse_args(argv: list[str]) -> argparse.Namespace:
    def names(allowed: tuple[str, ...]) -> Callable[[str], list[str]]:
        def parse(text: str) -> list[str]:
            chosen = [item for item in text.split(",") if item]
            unknown = set(chosen) - set(allowed)
            if unknown:
                raise argparse.ArgumentTypeError(f"unknown: {', '.join(sorted(unknown))}")
            return chosen

        return parse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help=f"peers' virtualenv (default {DEFAULT_VENV})")
    parser.add_argument("--reinstall", action="store_true", help="pip install into the virtualenv even if it is set up")
    parser.add_argument("--setup-only", action="store_true", help="create/check the virtualenv, list it, stop")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--rounds", type=int, default=40, help="interleaved rounds (default 40: 20 let the verdict flip with the noise)"
    )
    parser.add_argument("--calls", type=int, default=100, help="timed calls per variant per round (default 100)")
    parser.add_argument("--block", type=int, default=20, help="calls per variant before switching (default 20)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls per variant before round 1 (default 20)")
    parser.add_argument("--prompt-chars", type=int, default=1000, help="length of the system prompt (default 1000)")
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per streamed answer (default 20)")
    parser.add_argument(
        "--groups", type=names(GROUPS), default=["openai"], help=f"workloads out of {','.join(GROUPS)} (default openai)"
    )
    parser.add_argument(
        "--variants",
        type=names(VARIANTS),
        default=list(VARIANTS),
        help=f"variants, bare first (default {','.join(VARIANTS)})",
    )
    parser.add_argument("--json", type=Path, help="also write every figure (and per-round medians) here")
    args = parser.parse_args(argv)
    if args.variants[0] != "bare":
        parser.error("--variants must start with bare")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    return run_driver([a for a in argv if a not in ("--reinstall", "--setup-only")], args)


if __name__ == "__main__":
    sys.exit(main())
