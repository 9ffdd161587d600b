"""The commission arithmetic, with no I/O: how a sale splits and how a refund reverses it.

Every amount is integer cents and every rate integer basis points (10000 = 100%). The split
floors each taker's share and gives the brand the remainder, so the parts always sum to the
amount; a refund of ``k`` of ``qty`` units gives back ``floor(share × k / qty)`` of each taker's
share, the brand the rest of ``k × unit price``, and the last refund exactly what is left.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

BPS = 10_000
TAKERS = ("platform", "dealer", "upline")  # everyone who takes a rate; the brand keeps the rest
ROLES = (*TAKERS, "brand")


@dataclass(frozen=True)
class Rates:
    """The rates frozen on an order. A rate of ``None`` means nobody holds that role."""

    platform_bps: int
    dealer_bps: int | None  # None: a brand-room order, no dealer
    upline_bps: int | None  # None: no dealer, or a dealer without an upline

    def of(self) -> dict[str, int]:
        """Each role that takes part in this order and its rate; the brand gets the rest."""
        rates = {"platform": self.platform_bps}
        if self.dealer_bps is not None:
            rates["dealer"] = self.dealer_bps
            if self.upline_bps is not None:
                rates["upline"] = self.upline_bps
        rates["brand"] = BPS - sum(rates.values())
        return rates


def split_sale(amount_cents: int, rates: Rates) -> dict[str, int]:
    """Every role's share of a sale (0-cent shares included); the shares sum to the amount."""
    if amount_cents < 0:
        raise ValueError("a sale amount is never negative")
    role_rates = rates.of()
    if role_rates["brand"] < 0:
        raise ValueError("the rates add up to more than 100%")
    shares = {
        role: amount_cents * rate // BPS for role, rate in role_rates.items() if role != "brand"
    }
    shares["brand"] = amount_cents - sum(shares.values())
    return shares


def split_refund(
    sale: Mapping[str, int],
    reversed_so_far: Mapping[str, int],
    qty: int,
    refunded_qty: int,
    k: int,
    unit_price_cents: int,
) -> dict[str, int]:
    """How much of each role's sale share a refund of ``k`` units gives back (amounts ≥ 0).

    ``sale`` holds each role's booked share, ``reversed_so_far`` what earlier refunds already
    gave back (both positive). Takers give back ``floor(share × k / qty)``; the brand gives back
    the rest of ``k × unit_price_cents``; the refund that brings ``refunded_qty`` to ``qty``
    gives back exactly what is left of every share. Where the brand's share cannot cover its
    remainder (rates summing to nearly 100%, so the brand kept almost nothing) the shortfall is
    taken from the takers' remaining shares, so no party ever gives back more than it got.
    """
    if not 1 <= k <= qty - refunded_qty:
        raise ValueError(f"refund of {k} units out of {qty - refunded_qty} refundable")
    left = {role: sale.get(role, 0) - reversed_so_far.get(role, 0) for role in ROLES}
    if refunded_qty + k == qty:
        return left
    back = {role: min(sale.get(role, 0) * k // qty, left[role]) for role in TAKERS}
    rest = k * unit_price_cents - sum(back.values())
    back["brand"] = min(rest, left["brand"])
    shortfall = rest - back["brand"]
    for role in TAKERS:
        taken = min(shortfall, left[role] - back[role])
        back[role] += taken
        shortfall -= taken
    if shortfall:
        raise ValueError("the booked shares do not cover this refund")
    return back
