"""User prices from pyproject.toml / agentprof.toml, their precedence, errors and arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from agentprof._usage import CanonicalUsage
from agentprof.exceptions import ConfigError
from agentprof.pricing import UserPrices, cost_from_prices, price_call, resolve_model

WHEN = datetime(2025, 9, 1, tzinfo=UTC)
M = Decimal(1_000_000)

PYPROJECT = """\
[project]
name = "demo"

[tool.agentprof.prices."my-llama"]
input = 0.20
output = 0.60
cache_read = 0.02

[tool.agentprof.prices."OpenAI/GPT-4o"]
input = 1.0
output = 4
cache_read = "0.5"

[tool.agentprof.prices."azure/prod-deployment"]
input = 2.5
output = 10
cache_write = 3
cache_write_1h = 5
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    nested = tmp_path / "src" / "pkg"
    nested.mkdir(parents=True)
    return nested


def test_load_from_pyproject_and_price_a_self_hosted_model(project: Path) -> None:
    prices = UserPrices.load(project)
    assert len(prices) == 3
    usage = CanonicalUsage(input_tokens=1_000_000, output_tokens=500_000, cache_read_tokens=400_000)
    result = price_call(usage, resolve_model("vllm", "my-llama"), timestamp=WHEN, user_prices=prices)
    assert result.priced
    assert result.input_cost_usd == Decimal("0.128")  # 600k x 0.20 + 400k x 0.02
    assert result.output_cost_usd == Decimal("0.3")
    assert result.cost_usd == Decimal("0.428")
    assert result.source == "user"
    assert result.version == f"user:{project.parent.parent / 'pyproject.toml'}"
    assert (result.priced_provider, result.priced_model) == ("vllm", "my-llama")


def test_user_price_wins_over_genai_prices(project: Path) -> None:
    prices = UserPrices.load(project)
    usage = CanonicalUsage(input_tokens=1_000_000, output_tokens=1_000_000, cache_read_tokens=1_000_000)
    ours = price_call(usage, resolve_model("openai", "gpt-4o"), timestamp=WHEN, user_prices=prices)
    theirs = price_call(usage, resolve_model("openai", "gpt-4o"), timestamp=WHEN)
    assert ours.cost_usd == Decimal("4.5")  # 1M cached x 0.5 + 1M output x 4
    assert theirs.cost_usd == Decimal("11.25")  # genai-prices: 1.25 + 10
    assert ours.source == "user" and theirs.source == "genai-prices"


def test_provider_scoped_key_does_not_match_another_provider(project: Path) -> None:
    prices = UserPrices.load(project)
    result = price_call(
        CanonicalUsage(1_000_000, 0), resolve_model("azure", "gpt-4o"), timestamp=WHEN, user_prices=prices
    )
    assert result.source == "genai-prices"
    assert prices.lookup(resolve_model(None, "openai/gpt-4o")) is not None


def test_azure_deployment_with_ttl_split(project: Path) -> None:
    prices = UserPrices.load(project)
    usage = CanonicalUsage(
        input_tokens=100_000,
        output_tokens=1_000,
        cache_read_tokens=20_000,
        cache_write_tokens=30_000,
        cache_write_1h_tokens=10_000,
    )
    ref = resolve_model("openai", "prod-deployment", "https://acme.openai.azure.com/openai")
    result = price_call(usage, ref, timestamp=WHEN, user_prices=prices)
    # uncached 50k x 2.5, cache read defaults to input (20k x 2.5), 20k x 3 (5m), 10k x 5 (1h)
    expected_input = (50_000 * Decimal("2.5") + 20_000 * Decimal("2.5") + 20_000 * 3 + 10_000 * 5) / M
    assert result.input_cost_usd == expected_input
    assert result.output_cost_usd == Decimal("0.01")
    without_user = price_call(usage, ref, timestamp=WHEN)
    assert not without_user.priced
    assert without_user.unpriced_reason == "unknown model 'prod-deployment' for provider 'azure'"


def test_defaults_of_optional_rates() -> None:
    prices = UserPrices.from_table({"m": {"input": 1, "output": 2, "cache_write": 3}}, "agentprof.toml")
    price = prices.lookup(resolve_model(None, "M"))
    assert price is not None
    assert (price.cache_read, price.cache_write, price.cache_write_1h) == (Decimal(1), Decimal(3), Decimal(3))


def test_agentprof_toml_prices_table(tmp_path: Path) -> None:
    (tmp_path / "agentprof.toml").write_text('[prices."bedrock/custom-model"]\ninput = 1\noutput = 1\n', "utf-8")
    prices = UserPrices.load(tmp_path)
    found = prices.lookup(resolve_model("aws.bedrock", "custom-model"))
    assert found is not None and found.provider == "aws"


def test_no_configuration_means_no_user_prices(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.agentprof]\ndb = "x"\n', encoding="utf-8")
    assert not UserPrices.load(tmp_path)
    assert UserPrices.empty().lookup(resolve_model("openai", "gpt-4o")) is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"input": 0.2}, 'pyproject.toml: [tool.agentprof.prices."my-llama"] has no output price; add output = '),
        ({"input": -1, "output": 1}, "input = -1 is negative; prices are USD per million tokens, >= 0"),
        ({"input": 1, "output": 1, "cached": 1}, "has unknown key 'cached'; allowed keys: input, output, cache_read"),
        ({"input": "cheap", "output": 1}, "input = 'cheap' is not a price"),
        ({"input": True, "output": 1}, "input = True is not a price"),
        ({"input": float("nan"), "output": 1}, "input = nan is not a price"),
        (0.2, 'pyproject.toml: [tool.agentprof.prices."my-llama"] must be a table with input = '),
    ],
)
def test_bad_entries_raise_one_line_config_errors(entry: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        UserPrices.from_table({"my-llama": entry}, "/repo/pyproject.toml")
    text = str(info.value)
    assert message in text
    assert text.startswith("/repo/pyproject.toml: ")
    assert "\n" not in text


def test_bad_entry_in_a_real_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[tool.agentprof.prices."my-llama"]\ninput = 0.2\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"pyproject\.toml: \[tool\.agentprof\.prices\.\"my-llama\"\] has no output"):
        UserPrices.load(tmp_path)


def test_keys_that_name_the_same_model_are_rejected() -> None:
    with pytest.raises(ConfigError, match='names the same model as "My-Llama"'):
        UserPrices.from_table({"My-Llama": {"input": 1, "output": 1}, "my-llama": {"input": 2, "output": 2}}, "a.toml")


def test_prices_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match=r"agentprof\.toml: \[prices\] must be a table"):
        UserPrices.from_table(["x"], "agentprof.toml")  # type: ignore[arg-type]


def test_cost_from_prices_formula() -> None:
    usage = CanonicalUsage(
        input_tokens=1_000,
        output_tokens=300,
        cache_read_tokens=200,
        cache_write_tokens=300,
        cache_write_5m_tokens=100,
        cache_write_1h_tokens=200,
        reasoning_tokens=100,
    )
    input_cost, output_cost = cost_from_prices(
        usage,
        input=Decimal(3),
        output=Decimal(15),
        cache_read=Decimal("0.3"),
        cache_write=Decimal("3.75"),
        cache_write_1h=Decimal(6),
    )
    assert input_cost == Decimal("0.003135")  # (500x3 + 200x0.3 + 100x3.75 + 200x6) / 1e6
    assert output_cost == Decimal("0.0045")
    with pytest.raises(ValueError, match="exceed input_tokens"):
        cost_from_prices(
            CanonicalUsage(1, 0, 2),
            input=Decimal(1),
            output=Decimal(1),
            cache_read=Decimal(1),
            cache_write=Decimal(1),
            cache_write_1h=Decimal(1),
        )


def test_user_prices_match_genai_prices_at_the_same_rates() -> None:
    # Same rates as claude-sonnet-4-5's base tier: both paths must agree to the last digit.
    table = {
        "anthropic/claude-sonnet-4-5": {
            "input": 3,
            "output": 15,
            "cache_read": 0.3,
            "cache_write": 3.75,
            "cache_write_1h": 6,
        }
    }
    prices = UserPrices.from_table(table, "pyproject.toml")
    usage = CanonicalUsage(50_000, 2_000, 30_000, 15_000, 10_000, 5_000, 700)
    ref = resolve_model("anthropic", "claude-sonnet-4-5")
    ours = price_call(usage, ref, timestamp=WHEN, user_prices=prices)
    theirs = price_call(usage, ref, timestamp=WHEN)
    assert (ours.source, theirs.source) == ("user", "genai-prices")
    assert ours.cost_usd == theirs.cost_usd == Decimal("0.1215")
