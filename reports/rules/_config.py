"""Thresholds of the recommendation rules, from ``[tool.agentprof.rules]`` (defaults documented here).

Every field can be overridden per rule, e.g.::

    [tool.agentprof.rules.exact_cache]
    window_hours = 24
    [tool.agentprof.rules.cheaper_model]
    min_calls = 50

Defaults follow the evidence in ``shared/research/pricing_routing.md`` §B.5.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExactCacheConfig(_Section):
    """R1: identical requests re-sent (a response cache would have served them)."""

    window_hours: float = Field(24.0, gt=0, description="Repeats count within this window (across tasks).")
    min_repeats: int = Field(1, ge=1, description="Flag a step with at least this many repeated requests.")
    min_savings_usd: float = Field(0.0, ge=0, description="Ignore findings saving less than this.")


class PromptCacheConfig(_Section):
    """R2: a shared prompt prefix above the provider's minimum re-sent without cache reads."""

    min_group_calls: int = Field(2, ge=2, description="Calls sharing the prefix within the TTL.")
    read_fraction_below: float = Field(0.5, ge=0, le=1, description="Flag when cache reads < this x prefix.")
    min_savings_usd: float = Field(0.0, ge=0)


class WastedCacheWriteConfig(_Section):
    """R3: cache writes never read within their TTL; 1-hour writes where 5 minutes would do."""

    min_savings_usd: float = Field(0.0, ge=0)


class ContextGrowthConfig(_Section):
    """R4: agent loops whose input grows every iteration (quadratic total input)."""

    min_iterations: int = Field(8, ge=3, description="Calls of one loop (same task, step and system prompt).")
    min_resend_ratio: float = Field(5.0, gt=1, description="Total input / new input across the loop.")
    min_r_squared: float = Field(0.8, ge=0, le=1, description="Fit of input tokens growing linearly per iteration.")
    low_cached_fraction: float = Field(
        0.5, ge=0, le=1, description="Below this share of input read from cache, prompt caching is the fix."
    )


class CheaperModelConfig(_Section):
    """R6: an expensive model on easy steps (short, structured or classification-like outputs)."""

    min_calls: int = Field(20, ge=1)
    min_cost_usd: float = Field(0.0, ge=0, description="Spend on the step before it is worth flagging.")
    max_median_output_tokens: int = Field(150, ge=1)
    max_p90_output_tokens: int = Field(400, ge=1)
    max_distinct_output_ratio: float = Field(0.1, ge=0, le=1, description="Classification-like: distinct/calls.")
    max_reasoning_share: float = Field(0.1, ge=0, le=1)
    acceptance_low: float = Field(0.35, ge=0, le=1, description="Low end: share of calls the cheaper model handles.")
    token_spread: float = Field(0.15, ge=0, le=1, description="Token count uncertainty between tokenizers.")


class RetryStormConfig(_Section):
    """R7: repeated attempts within a step (errors, or re-asks after validation failures)."""

    min_attempts: int = Field(3, ge=2)
    window_seconds: float = Field(60.0, gt=0)


class RedundantToolConfig(_Section):
    """R8: tool steps called again with the same arguments and the same result within a task."""

    min_repeats: int = Field(1, ge=1)


class LongContextTierConfig(_Section):
    """R5: calls just over a long-context price tier threshold."""

    max_over_fraction: float = Field(0.2, gt=0, description="Flag calls at most this fraction above a tier start.")


class RulesConfig(_Section):
    """All rule thresholds; ``enabled`` lists the rules to run (all by default)."""

    enabled: tuple[str, ...] | None = None
    max_calls: int = Field(
        100_000,
        ge=0,
        description=(
            "Above this many calls in the selection, analyse the latest this many and scale the money to the "
            "selection (0: always analyse every call)."
        ),
    )
    exact_cache: ExactCacheConfig = ExactCacheConfig()
    prompt_cache: PromptCacheConfig = PromptCacheConfig()
    wasted_cache_write: WastedCacheWriteConfig = WastedCacheWriteConfig()
    context_growth: ContextGrowthConfig = ContextGrowthConfig()
    cheaper_model: CheaperModelConfig = CheaperModelConfig()
    retry_storm: RetryStormConfig = RetryStormConfig()
    redundant_tool: RedundantToolConfig = RedundantToolConfig()
    long_context_tier: LongContextTierConfig = LongContextTierConfig()

    @classmethod
    def from_table(cls, table: Mapping[str, Any], source: str) -> RulesConfig:
        """Validate a ``[tool.agentprof.rules]`` table.

        Raises:
            ConfigError: One line naming the file, the setting and what is wrong.
        """
        from agentprof.exceptions import ConfigError

        try:
            return cls.model_validate(dict(table))
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise ConfigError(f"{source}: [tool.agentprof.rules] {where}: {error['msg']}") from None

    @classmethod
    def load(cls, start: Path | None = None) -> RulesConfig:
        """Read ``[tool.agentprof.rules]`` from the project's configuration (defaults if absent)."""
        from agentprof._config import load_project_config

        table, path = load_project_config(start)
        rules = table.get("rules", {})
        return cls.from_table(rules if isinstance(rules, dict) else {}, str(path or "defaults"))
