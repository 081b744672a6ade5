"""Threshold expressions: what parses, what is refused before a run, how a value is judged."""

from __future__ import annotations

import pytest

from flashsale.transport.load._thresholds import ALWAYS, ThresholdError, breaches, parse, parse_all


def test_latency_units_convert_to_milliseconds() -> None:
    """`us`, `ms` (the default, as in k6) and `s` all become milliseconds; p99.9 is a metric name."""
    assert parse("purchase.p99<50ms").limit == 50
    assert parse("purchase.p99.9 <= 2s").limit == 2000
    assert parse("join.p50<250us").limit == pytest.approx(0.25)
    assert parse("pay.max<7").limit == 7
    assert parse("http.5xx==0").limit == 0


@pytest.mark.parametrize(
    "text",
    ["purchse.p99<50ms", "purchase.p98<5", "purchase.p99=<5", "purchase.p99<", "purchase.p99<5 parsecs",
     "orders<5ms", "p99<5", "", "purchase.p99<-1"],
)  # fmt: skip
def test_bad_expressions_are_refused(text: str) -> None:
    """Unknown metrics, operators, units, units on counts and missing values are errors, never ignored."""
    with pytest.raises(ThresholdError):
        parse(text)


def test_invariants_are_always_on_and_judged() -> None:
    """The verdict's thresholds come first, always; a breach is the threshold whose value fails."""
    got = parse_all(["purchase.p99<50ms"])
    assert [t.text for t in got[: len(ALWAYS)]] == list(ALWAYS)
    assert all(t.always for t in got[: len(ALWAYS)])
    figures = {"purchase.p99": 60.0, "oversold": 0.0, "lost_orders": 2.0}
    assert [t.text for t in breaches(got, figures)] == ["lost_orders==0", "purchase.p99<50ms"]
