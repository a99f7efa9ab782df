"""Model prices: the table shipped with longrun, overridable by `$LONGRUN_HOME/pricing.toml`."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from longrun.scheduler.spec.run import RunSpec
from longrun.store.errors import SpecError
from longrun.store.runs import Usage

PER_MILLION = 1_000_000


@dataclass(frozen=True)
class Price:
    """USD per million tokens of each kind."""

    model: str
    input: float
    output: float
    cache_write: float
    cache_read: float

    def cost(
        self, input_tokens: int, output_tokens: int, cache_write_tokens: int, cache_read_tokens: int
    ) -> float:
        return (
            input_tokens * self.input
            + output_tokens * self.output
            + cache_write_tokens * self.cache_write
            + cache_read_tokens * self.cache_read
        ) / PER_MILLION

    def usage(
        self, input_tokens: int, output_tokens: int, cache_write_tokens: int, cache_read_tokens: int
    ) -> Usage:
        usd = self.cost(input_tokens, output_tokens, cache_write_tokens, cache_read_tokens)
        return Usage(input_tokens, output_tokens, cache_write_tokens, cache_read_tokens, usd)


@dataclass(frozen=True)
class PriceTable:
    checked: str
    prices: dict[str, Price]

    def find(self, model: str) -> Price | None:
        """The price whose key is the longest prefix of `model`."""
        best = max((key for key in self.prices if model.startswith(key)), key=len, default=None)
        return self.prices[best] if best else None


def _parse(raw: dict[str, Any], source: str) -> PriceTable:
    prices: dict[str, Price] = {}
    for key, entry in (raw.get("models") or {}).items():
        try:
            prices[key] = Price(
                key,
                float(entry["input"]),
                float(entry["output"]),
                float(entry.get("cache_write", entry["input"] * 1.25)),
                float(entry.get("cache_read", entry["input"] * 0.1)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SpecError(
                f"{source}: models.{key}: expected input and output prices in USD ({exc})"
            ) from None
    return PriceTable(str(raw.get("checked", "")), prices)


def load_prices(home: Path | None = None) -> PriceTable:
    """The shipped table, with entries from `home/pricing.toml` replacing or adding models."""
    shipped = tomllib.loads(resources.files("longrun.scheduler.guards").joinpath("pricing.toml").read_text())
    table = _parse(shipped, "pricing.toml")
    override = home / "pricing.toml" if home else None
    if override and override.exists():
        try:
            extra = _parse(tomllib.loads(override.read_text()), str(override))
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"{override}: not valid TOML: {exc}") from None
        table = PriceTable(extra.checked or table.checked, table.prices | extra.prices)
    return table


def prices_for(spec: RunSpec, home: Path | None) -> PriceTable:
    """The prices a run is charged at: longrun's table, the store's override, then the spec's own."""
    table = load_prices(home)
    own = {
        model: Price(
            model,
            p.input,
            p.output,
            p.cache_write if p.cache_write is not None else p.input * 1.25,
            p.cache_read if p.cache_read is not None else p.input * 0.1,
        )
        for model, p in spec.pricing.items()
    }
    return PriceTable(table.checked, table.prices | own) if own else table
