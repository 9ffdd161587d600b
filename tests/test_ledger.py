"""The commission arithmetic and the webhook signature, as pure functions (no server)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from livecommerce.commission import BPS, TAKERS, Rates, split_refund, split_sale
from livecommerce.signatures import SignatureError, sign, verify
from livecommerce.webhooks import backoff_s


@st.composite
def rates(draw: st.DrawFn) -> Rates:
    platform = draw(st.integers(0, BPS))
    if draw(st.booleans()):
        return Rates(platform, None, None)  # a brand-room order
    dealer = draw(st.integers(0, BPS - platform))
    upline = draw(st.one_of(st.none(), st.integers(0, BPS - platform - dealer)))
    return Rates(platform, dealer, upline)


@st.composite
def refund_plan(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    """(qty, unit price, sizes of partial refunds that leave at least one unit)."""
    qty = draw(st.integers(1, 10_000))
    price = draw(st.integers(1, 10_000_000_000 // qty))
    sizes: list[int] = []
    left = qty
    while left > 1 and draw(st.booleans()):
        k = draw(st.integers(1, left - 1))
        sizes.append(k)
        left -= k
    return qty, price, sizes


@given(st.integers(0, 10_000_000_000), rates())
def test_split_parts_sum_to_the_amount_and_none_is_negative(amount: int, r: Rates) -> None:
    shares = split_sale(amount, r)
    assert sum(shares.values()) == amount
    assert all(share >= 0 for share in shares.values())
    role_rates = r.of()
    for role in TAKERS:
        if role in shares:
            assert shares[role] == amount * role_rates[role] // BPS
    assert sum(role_rates.values()) == BPS


def test_brand_room_order_pays_no_dealer_and_no_upline() -> None:
    shares = split_sale(1000, Rates(platform_bps=500, dealer_bps=None, upline_bps=None))
    assert shares == {"platform": 50, "brand": 950}
    assert Rates(500, None, None).of()["brand"] == 9500


def test_dealer_without_upline_leaves_the_upline_share_with_the_brand() -> None:
    shares = split_sale(1000, Rates(platform_bps=100, dealer_bps=1000, upline_bps=None))
    assert shares == {"platform": 10, "dealer": 100, "brand": 890}
    with_upline = split_sale(1000, Rates(platform_bps=100, dealer_bps=1000, upline_bps=200))
    assert with_upline == {"platform": 10, "dealer": 100, "upline": 20, "brand": 870}
    assert Rates(100, 1000, 200).of()["brand"] == 10_000 - 1300


def test_split_floors_each_share_and_gives_the_remainder_to_the_brand() -> None:
    # 333 × 3333 bps = 110.9889 → 110 for each of three takers; the brand keeps 3 extra cents
    shares = split_sale(333, Rates(3333, 3333, 3333))
    assert shares == {"platform": 110, "dealer": 110, "upline": 110, "brand": 3}


@settings(max_examples=300)
@given(refund_plan(), rates())
def test_partial_refunds_then_a_full_refund_reverse_exactly_what_was_booked(
    plan: tuple[int, int, list[int]], r: Rates
) -> None:
    qty, price, sizes = plan
    sale = split_sale(qty * price, r)
    reversed_so_far = {role: 0 for role in sale}
    refunded = 0
    for k in [*sizes, qty - sum(sizes)]:
        back = split_refund(sale, reversed_so_far, qty, refunded, k, price)
        assert sum(back.values()) == k * price
        assert all(amount >= 0 for amount in back.values())
        for role, amount in back.items():
            reversed_so_far[role] = reversed_so_far.get(role, 0) + amount
            assert reversed_so_far[role] <= sale.get(role, 0)
        refunded += k
    assert {role: reversed_so_far.get(role, 0) for role in sale} == sale
    assert all(reversed_so_far.get(role, 0) == 0 for role in set(reversed_so_far) - set(sale))


@given(refund_plan())
def test_takers_get_back_the_floor_of_their_share_times_k_over_qty(
    plan: tuple[int, int, list[int]],
) -> None:
    qty, price, sizes = plan
    r = Rates(platform_bps=500, dealer_bps=1500, upline_bps=300)
    sale = split_sale(qty * price, r)
    reversed_so_far: dict[str, int] = {}
    refunded = 0
    for k in sizes:
        back = split_refund(sale, reversed_so_far, qty, refunded, k, price)
        literal = {role: sale[role] * k // qty for role in TAKERS}
        brand_rest = k * price - sum(literal.values())
        brand_left = sale["brand"] - reversed_so_far.get("brand", 0)
        if brand_rest <= brand_left:  # the design's rule, whenever the brand's share allows it
            assert back == {**literal, "brand": brand_rest}
        else:  # flooring left the brand too little: it gives back all it has left, no more
            assert back["brand"] == brand_left
            assert all(back[role] >= literal[role] for role in TAKERS)
        for role, amount in back.items():
            reversed_so_far[role] = reversed_so_far.get(role, 0) + amount
        refunded += k


def test_refund_of_more_units_than_are_left_is_refused() -> None:
    sale = split_sale(300, Rates(0, 1000, None))
    with pytest.raises(ValueError):
        split_refund(sale, {}, 3, 2, 2, 100)
    with pytest.raises(ValueError):
        split_refund(sale, {}, 3, 0, 0, 100)


def test_refund_when_the_takers_hold_everything_never_reverses_more_than_a_share() -> None:
    # platform and dealer take 50% each: the brand keeps nothing, so a 1-unit refund cannot
    # come from the brand's share and is taken from the takers instead
    sale = split_sale(2, Rates(5000, 5000, None))
    assert sale == {"platform": 1, "dealer": 1, "brand": 0}
    first = split_refund(sale, {}, 2, 0, 1, 1)
    assert sum(first.values()) == 1 and first["brand"] == 0
    second = split_refund(sale, first, 2, 1, 1, 1)
    assert {role: first[role] + second[role] for role in sale} == sale


def test_signature_round_trip_and_refusals() -> None:
    body = b'{"event_id":"e1"}'
    header = sign("s3cret", 1_700_000_000, body)
    assert verify("s3cret", header, body, now=1_700_000_100) == 1_700_000_000
    refusals = [
        ("other", header, body, 1_700_000_100),  # wrong secret
        ("s3cret", header, body + b" ", 1_700_000_100),  # tampered body
        ("s3cret", header, body, 1_700_000_301),  # stale: more than 5 minutes old
        ("s3cret", header, body, 1_699_999_699),  # from more than 5 minutes in the future
        ("s3cret", "t=abc,v1=00", body, 1_700_000_000),  # malformed
        ("s3cret", None, body, 1_700_000_000),  # missing
        ("s3cret", "t=1700000000,v1=\u00e9", body, 1_700_000_000),  # non-ASCII signature
    ]
    for secret, value, raw, now in refusals:
        with pytest.raises(SignatureError):
            verify(secret, value, raw, now=now)


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff_s(n, 1.0, 10.0) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
