"""``governance:`` in dvflow.yaml: prices, gc's grace period, sanitiser stages.

::

    governance:
      grace_days: 7            # gc keeps objects pushed in the last N days
      prices:                  # USD per GB-month, by remote scheme
        s3: 0.023
        local: 0
      sanitisers:              # stages whose outputs no longer hold the fields
        prepare: {drops: [email], masks: [phone]}

Only the shape is checked here; what each setting means lives in the
governance wing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._exceptions import InvalidFileError

DEFAULT_GRACE_DAYS = 7
_KEYS = frozenset({"grace_days", "prices", "sanitisers"})
_SANITISER_KEYS = frozenset({"drops", "masks"})


@dataclass(frozen=True)
class Sanitiser:
    """A stage declared to drop or mask personal fields: it stops the taint."""

    stage: str
    drops: tuple[str, ...] = ()
    masks: tuple[str, ...] = ()


@dataclass(frozen=True)
class GovernanceSettings:
    grace_days: int = DEFAULT_GRACE_DAYS
    # Overrides of the built-in price table, USD per GB-month by scheme.
    prices: Mapping[str, float] = field(default_factory=dict)
    sanitisers: Mapping[str, Sanitiser] = field(default_factory=dict)


def governance_settings(path: Path, value: Any) -> GovernanceSettings:
    if not isinstance(value, dict):
        raise InvalidFileError(path, "'governance' must be a mapping (prices, sanitisers...)")
    unknown = sorted(map(str, set(value) - _KEYS))
    if unknown:
        raise InvalidFileError(
            path,
            f"unknown governance setting(s): {', '.join(unknown)}",
            hint=f"Known: {', '.join(sorted(_KEYS))}.",
        )
    grace = value.get("grace_days", DEFAULT_GRACE_DAYS)
    if isinstance(grace, bool) or not isinstance(grace, int) or grace < 0:
        raise InvalidFileError(path, "'governance.grace_days' must be a whole number of days >= 0")
    return GovernanceSettings(
        grace_days=grace,
        prices=_prices(path, value.get("prices", {})),
        sanitisers=_sanitisers(path, value.get("sanitisers", {})),
    )


def _prices(path: Path, value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        raise InvalidFileError(path, "'governance.prices' must map a scheme (s3, gs...) to a price")
    prices: dict[str, float] = {}
    for scheme, price in value.items():
        if isinstance(price, bool) or not isinstance(price, int | float) or price < 0:
            raise InvalidFileError(
                path, f"'governance.prices.{scheme}' must be a price in USD per GB-month, >= 0"
            )
        prices[str(scheme)] = float(price)
    return prices


def _sanitisers(path: Path, value: Any) -> dict[str, Sanitiser]:
    if not isinstance(value, dict):
        raise InvalidFileError(path, "'governance.sanitisers' must map a stage name to drops/masks")
    stages: dict[str, Sanitiser] = {}
    for stage, spec in value.items():
        where = f"governance.sanitisers.{stage}"
        if not isinstance(spec, dict) or not spec or set(spec) - _SANITISER_KEYS:
            raise InvalidFileError(
                path, f"'{where}' must be a mapping with 'drops' and/or 'masks' (lists of fields)"
            )
        lists = {key: spec.get(key, []) for key in _SANITISER_KEYS}
        for key, fields in lists.items():
            if not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields):
                raise InvalidFileError(path, f"'{where}.{key}' must be a list of field names")
        stages[str(stage)] = Sanitiser(
            stage=str(stage), drops=tuple(lists["drops"]), masks=tuple(lists["masks"])
        )
    return stages
