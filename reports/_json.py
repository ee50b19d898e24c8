"""The report as JSON: the pydantic model, money as numbers."""

from __future__ import annotations

from pydantic import BaseModel


def render_json(report: BaseModel) -> str:
    """Return ``report`` (or any report model) as indented JSON text."""
    return report.model_dump_json(indent=2)
