"""OTLP ingest: spans from any instrumentation family into the store's spool.

``agentprof serve`` (an OTLP/HTTP receiver) and ``agentprof import`` (OTLP JSON files) both
decode requests here (:mod:`._decode`), map whole traces to spool rows (:mod:`._traces`, using
the family dialects in :mod:`._dialects`) and write them with the same
:class:`~agentprof._spool.SpoolWriter` live processes use, so ingestion into the store stays
exactly-once and multi-process safe.
"""

from __future__ import annotations

from agentprof.ingest._decode import DecodedRequest, FlatSpan, RequestDecodeError, decode_json, decode_protobuf
from agentprof.ingest._traces import MappedSpans, TraceMapper

__all__ = [
    "DecodedRequest",
    "FlatSpan",
    "MappedSpans",
    "RequestDecodeError",
    "TraceMapper",
    "decode_json",
    "decode_protobuf",
]
