"""What a byte costs per month, by the remote's scheme.

The defaults are the providers' published list prices of their standard
tier in their first pricing band, as of ``PRICES_AS_OF``: Amazon S3 Standard
(us-east-1, first 50 TB), Google Cloud Storage Standard (us-central1,
regional), Azure Blob Storage Hot LRS (East US, first 50 TB). Requests,
egress, other regions and discounts are not counted. ``governance.prices``
in dvflow.yaml overrides any of them (``s3: 0.0125`` for Infrequent Access).
Providers bill a "GB-month" of 2**30 bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PRICES_AS_OF = "2024-06-01"
GB = 2**30
DEFAULT_PRICES: Mapping[str, float] = {
    "s3": 0.023,
    "gs": 0.020,
    "azure": 0.0184,
    "local": 0.0,
}


@dataclass(frozen=True)
class Price:
    """USD per GB-month for one scheme, and where the figure comes from."""

    scheme: str
    usd_per_gb_month: float | None
    source: str  # "default: list price as of …", "dvflow.yaml" or "unknown"

    def monthly(self, size: int) -> float | None:
        """The monthly cost of ``size`` bytes (None when no price is known)."""
        if self.usd_per_gb_month is None:
            return None
        return size / GB * self.usd_per_gb_month

    def to_dict(self) -> dict[str, object]:
        return {
            "scheme": self.scheme,
            "usd_per_gb_month": self.usd_per_gb_month,
            "source": self.source,
        }


def price_for(scheme: str, overrides: Mapping[str, float]) -> Price:
    """The price of ``scheme``: dvflow.yaml's, else the default, else unknown."""
    if scheme in overrides:
        return Price(scheme, float(overrides[scheme]), "dvflow.yaml")
    if scheme in DEFAULT_PRICES:
        return Price(scheme, DEFAULT_PRICES[scheme], f"default: list price as of {PRICES_AS_OF}")
    return Price(scheme, None, "unknown")


def usd(amount: float | None) -> str:
    """``$1.23`` (a cent or more), ``$0.0042`` (less), ``unknown`` (no price)."""
    if amount is None:
        return "unknown"
    return f"${amount:,.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.4f}"
