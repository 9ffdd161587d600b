"""``livecommerce bench`` folds every micro-benchmark's result into one table of ratios, whether
the bench returns a dict or prints a Markdown table."""

from __future__ import annotations

import pytest

from livecommerce.benchrunner import (
    available,
    json_report,
    print_table,
    rows_from_markdown,
    rows_of,
)

FANOUT_OUTPUT = """measuring hub ...
connections: 1000, latency events: 10 (300 ms apart)

| server | connected | RSS/idle conn (KiB) | p99 (ms) | deliveries/s | × naive |
| --- | --- | --- | --- | --- | --- |
| hub | 1000 (0 failed) | 12.5 | 9.1 | 120,000 | 3.10 |
| naive | 1000 (0 failed) | 30.2 | 40.0 | 38,700 | 1.00 |
"""


def test_a_printed_markdown_table_becomes_rows_with_its_ratio_column() -> None:
    rows = rows_from_markdown("fanout", FANOUT_OUTPUT)
    assert [(r.case, r.ratio, r.against) for r in rows] == [
        ("hub", "3.10", "naive"),
        ("naive", "1.00", "naive"),
    ]
    assert "RSS/idle conn (KiB) 12.5" in rows[0].figures


def test_a_returned_dict_becomes_rows_whatever_its_nesting() -> None:
    one = rows_of("buy", {"value": 5000.0, "unit": "buys/s", "baseline": 1250.0, "ratio": 4.0,
                          "target": 3.0, "met": True})  # fmt: skip
    assert (one[0].case, one[0].ratio, one[0].met) == ("buy", "4", True)
    listed = rows_of("writer", {"rows": [{"name": "batched", "ratio": 12.5, "met": False}]})
    assert (listed[0].case, listed[0].ratio, listed[0].met) == ("batched", "12.5", False)
    keyed = rows_of("x", {"p99": {"value": 3, "ratio": 0.5}, "note": "ignored"})
    assert [(r.case, r.ratio) for r in keyed] == [("p99", "0.5")]


def test_the_table_prints_one_line_per_row_and_marks_missed_targets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = rows_of("writer", {"rows": [{"name": "batched", "ratio": 0.8, "met": False}]})
    print_table(rows + rows_from_markdown("fanout", FANOUT_OUTPUT))
    out = capsys.readouterr().out
    assert "MISSED" in out and "3.10" in out and "CPUs" in out
    assert len([line for line in out.splitlines() if line.startswith(("writer", "fanout"))]) == 3


def test_the_checkout_benchmarks_are_discovered() -> None:
    assert "fanout" in available()


def test_a_printed_json_report_with_ratios_becomes_one_row_per_ratio() -> None:
    printed = 'starting\n{\n  "requests_per_s": {"http": 900, "naive": 300},\n  "ratios": ' \
        '{"http_vs_naive": 3.0, "ws_vs_http": 1.2}\n}\nhttp/naive = 3.0\n'  # fmt: skip
    report = json_report(printed)
    assert report is not None
    rows = rows_of("buy", report)
    assert [(r.case, r.ratio, r.against) for r in rows] == [
        ("http", "3", "naive"),
        ("ws", "1.2", "http"),
    ]
    assert "http 900" in rows[0].figures


def test_a_missed_target_flag_is_read_from_target_met() -> None:
    rows = rows_of("order_writer", {"writer_orders_per_s": 7971, "ratio": 72.4,
                                    "target_met": False})  # fmt: skip
    assert (rows[0].ratio, rows[0].met) == ("72.4", False)
    assert "target_met False" not in rows[0].figures
