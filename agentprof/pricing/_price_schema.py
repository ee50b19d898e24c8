"""The pydantic schema of one user price entry, imported only when a prices table is validated.

Kept out of :mod:`agentprof.pricing._user_prices` so importing the pricing package does not
import pydantic (about 35 ms) in processes that never read a prices table.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import pydantic

__all__ = ["FIELDS", "PriceEntry", "describe_error"]

Price = Annotated[Decimal, pydantic.Field(ge=0, allow_inf_nan=False)]
FIELDS = "input, output, cache_read, cache_write, cache_write_1h"


class PriceEntry(pydantic.BaseModel):
    """One user price table, in USD per million tokens; unknown keys are typos and rejected."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    input: Price
    output: Price
    cache_read: Price | None = None
    cache_write: Price | None = None
    cache_write_1h: Price | None = None


def describe_error(exc: pydantic.ValidationError) -> str:
    """Turn the first validation error into "what is wrong; how to fix it"."""
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]) or "entry"
    kind = error["type"]
    if kind == "missing":
        return f"has no {field} price; add {field} = <USD per million {field} tokens>"
    if kind == "extra_forbidden":
        return f"has unknown key {field!r}; allowed keys: {FIELDS}"
    if kind == "greater_than_equal":
        return f"{field} = {error['input']!r} is negative; prices are USD per million tokens, >= 0"
    return f"{field} = {error['input']!r} is not a price ({error['msg']}); use a number such as 0.20"
