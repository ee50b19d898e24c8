"""User prices: self-hosted, fine-tuned, negotiated or Azure-deployment models genai-prices cannot know.

They live in ``[tool.agentprof.prices."<key>"]`` of pyproject.toml or ``[prices."<key>"]`` of
agentprof.toml, in USD per million tokens::

    [tool.agentprof.prices."my-llama"]      # key: "model" or "provider/model", case-insensitive
    input = 0.20            # required
    output = 0.60           # required
    cache_read = 0.02       # optional, default = input
    cache_write = 0.25      # optional, default = input (5-minute or unspecified TTL)
    cache_write_1h = 0.40   # optional, default = cache_write

Keys go through the same normaliser as reported models, so ``bedrock/my-model`` and
``aws/my-model`` name the same entry. A user price wins over genai-prices for the same model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from agentprof._config import load_project_config
from agentprof.exceptions import ConfigError
from agentprof.pricing._normalize import ModelRef, resolve_model

__all__ = ["UserPrice", "UserPrices"]


@dataclass(frozen=True, slots=True)
class UserPrice:
    """One user-defined price, with the optional rates already defaulted.

    Attributes:
        key: The key as written in the configuration file.
        provider: Provider part of the key, normalised, or ``None`` for a model-only key.
        model: Model part of the key.
        input: USD per million uncached input tokens.
        output: USD per million output tokens.
        cache_read: USD per million tokens read from the prompt cache.
        cache_write: USD per million tokens written with a 5-minute or unspecified TTL.
        cache_write_1h: USD per million tokens written with a 1-hour TTL.
        source: The file the price came from.
    """

    key: str
    provider: str | None
    model: str
    input: Decimal
    output: Decimal
    cache_read: Decimal
    cache_write: Decimal
    cache_write_1h: Decimal
    source: str


class UserPrices:
    """User prices indexed by normalised ``provider/model`` and ``model`` keys."""

    __slots__ = ("_by_key",)

    def __init__(self, prices: Mapping[str, UserPrice] | None = None) -> None:
        self._by_key: dict[str, UserPrice] = dict(prices or {})

    @classmethod
    def empty(cls) -> UserPrices:
        """Return a table with no prices, for callers that price with genai-prices only."""
        return cls()

    @classmethod
    def load(cls, start: Path | None = None) -> UserPrices:
        """Load ``prices`` from the project's ``[tool.agentprof]`` (or agentprof.toml) configuration.

        Args:
            start: Directory to search upwards from; the current directory by default.

        Raises:
            ConfigError: The file is not valid TOML or a price entry is invalid.
        """
        table, path = load_project_config(start)
        if path is None or "prices" not in table:
            return cls.empty()
        return cls.from_table(table["prices"], str(path))

    @classmethod
    def from_table(cls, table: Mapping[str, Any], source: str) -> UserPrices:
        """Validate a ``prices`` table; ``source`` names its file in error messages and price versions.

        Raises:
            ConfigError: One line naming the file, the entry and the fix.
        """
        import pydantic

        from agentprof.pricing._price_schema import PriceEntry, describe_error

        section = _section_name(source)
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: [{section}] must be a table of model keys, each with input and output prices")
        prices: dict[str, UserPrice] = {}
        for key, entry in table.items():
            where = f'{source}: [{section}."{key}"]'
            if not isinstance(entry, Mapping):
                raise ConfigError(f"{where} must be a table with input = <USD/1M tokens> and output = <USD/1M tokens>")
            try:
                parsed = PriceEntry.model_validate(dict(entry))
            except pydantic.ValidationError as exc:
                raise ConfigError(f"{where} {describe_error(exc)}") from None
            ref = resolve_model(None, str(key))
            if not ref.model:
                raise ConfigError(f'{where}: the key is empty; name the model, e.g. "my-llama" or "azure/my-deploy"')
            lookup_key = _lookup_key(ref.provider, ref.model)
            if lookup_key in prices:
                other = prices[lookup_key].key
                raise ConfigError(f'{where} names the same model as "{other}" (keys are case-insensitive); keep one')
            cache_write = parsed.cache_write if parsed.cache_write is not None else parsed.input
            prices[lookup_key] = UserPrice(
                key=str(key),
                provider=ref.provider,
                model=ref.model,
                input=parsed.input,
                output=parsed.output,
                cache_read=parsed.cache_read if parsed.cache_read is not None else parsed.input,
                cache_write=cache_write,
                cache_write_1h=parsed.cache_write_1h if parsed.cache_write_1h is not None else cache_write,
                source=source,
            )
        return cls(prices)

    def lookup(self, ref: ModelRef) -> UserPrice | None:
        """Return the user price for a model: ``provider/model`` first, then the model alone, then the raw ref."""
        if not self._by_key or not ref.model:
            return None
        if ref.provider is not None and (found := self._by_key.get(_lookup_key(ref.provider, ref.model))):
            return found
        return self._by_key.get(_lookup_key(None, ref.model)) or self._by_key.get(_lookup_key(None, ref.raw))

    def __len__(self) -> int:
        return len(self._by_key)

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def __repr__(self) -> str:
        return f"UserPrices({sorted(price.key for price in self._by_key.values())!r})"


def _lookup_key(provider: str | None, model: str) -> str:
    model_key = model.strip().lower()
    return f"{provider}/{model_key}" if provider else model_key


def _section_name(source: str) -> str:
    return "prices" if Path(source).name == "agentprof.toml" else "tool.agentprof.prices"
