"""agentprof: profile the cost of agentic AI workflows.

Where does the money go in my agent loop, and what should I change? Decorate the agent,
instrument the SDKs, run, then ``agentprof report``::

    import agentprof

    agentprof.instrument()          # every supported SDK and framework is now recorded

    @agentprof.task
    def triage(ticket): ...

Everything here is the public API; every other module is internal.
"""

from __future__ import annotations

import typing as _typing

from agentprof._decorators import set_outcome, step, task
from agentprof._instrument import instrument, uninstrument
from agentprof._manual import RecordedCall, record_model_call
from agentprof._runtime import configure as _configure
from agentprof._runtime import flush, shutdown
from agentprof.exceptions import AgentprofError, ConfigError, StoreError

if _typing.TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__version__ = "0.1.0"


def configure(
    db: str | None = None,
    service_name: str | None = None,
    capture_content: bool | None = None,
    *,
    otlp: bool | None = None,
    tracer_provider: TracerProvider | None = None,
    max_queue_size: int = 8192,
    schedule_delay_millis: float = 1000.0,
) -> None:
    """Set up agentprof's own tracer provider and local store (optional: ``instrument`` does it).

    Never replaces the application's global TracerProvider. Calling it again replaces the
    previous configuration after flushing it.

    Args:
        db: Store location: a directory, a ``.duckdb`` file or an SQLAlchemy URL. Default:
            ``AGENTPROF_DB``, then ``[tool.agentprof] db``, then ``.agentprof/``.
        service_name: Name of this service in reports (default ``AGENTPROF_SERVICE_NAME``,
            ``OTEL_SERVICE_NAME``, then ``"agent"``).
        capture_content: Store prompt and completion text (default off: hashes and lengths
            are enough for every analysis). ``AGENTPROF_CAPTURE_CONTENT=1`` turns it on.
        otlp: Also export every span over OTLP to an existing observability stack, configured
            by the standard ``OTEL_EXPORTER_OTLP_*`` variables (endpoint, headers, protocol
            ``http/protobuf`` by default or ``grpc``, compression, timeout); model calls carry
            their cost. Default ``AGENTPROF_OTLP=1``. The local store keeps recording.
        tracer_provider: Join this OpenTelemetry SDK ``TracerProvider`` instead of creating one:
            its exporters receive agentprof's spans, and the store sees the application's.
        max_queue_size: Finished spans held before new ones are dropped (and counted); an export
            batch never exceeds it.
        schedule_delay_millis: How often finished spans are written to the spool.

    Raises:
        ConfigError: An unsupported OTLP protocol was configured, or ``max_queue_size`` or
            ``schedule_delay_millis`` is not positive (a profiler already running is kept).
    """
    _configure(
        db,
        service_name,
        capture_content,
        max_queue_size=max_queue_size,
        schedule_delay_millis=schedule_delay_millis,
        otlp=otlp,
        tracer_provider=tracer_provider,
    )


__all__ = [
    "AgentprofError",
    "ConfigError",
    "RecordedCall",
    "StoreError",
    "__version__",
    "configure",
    "flush",
    "instrument",
    "record_model_call",
    "set_outcome",
    "shutdown",
    "step",
    "task",
    "uninstrument",
]
