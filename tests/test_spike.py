"""A CI-sized flash-sale spike through the real runner: a real server, locust with several
worker processes, WebSocket and HTTP buyers, and the runner's invariant checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from livecommerce.loadrunner import run_loadtest


def test_ci_sized_spike_passes_every_invariant(tmp_path: Path) -> None:
    out = tmp_path / "spike"
    command = [
        sys.executable, "-m", "livecommerce", "loadtest", "spike",
        "--dealers", "4", "--viewers", "300", "--buyers", "200", "--stock", "100",
        "--limit", "2", "--attempts", "4", "--spawn-rate", "100", "--open-after", "2",
        "--sale-window", "15", "--settle", "2", "--processes", "2", "--out", str(out),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=150)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-6000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"], report[-6000:]
    assert len(summary["invariants"]) == 6
    assert all(check["passed"] for check in summary["invariants"])
    assert any(c["name"].startswith("/healthz stayed green") for c in summary["invariants"])
    assert summary["figures"]["server_rss_peak_mib"] > 0
    figures = summary["figures"]
    assert figures["sold"] == 100  # demand 200 × 2 > stock
    assert figures["buy_attempts"] >= 200
    assert figures["buys_by_result"].get("sold_out", 0) > 0
    assert figures["ws_connects"] >= 300
    assert figures["stock_events"] > 0 and figures["stock_delay_p99_ms"] is not None
    assert (out / "locust.html").stat().st_size > 0
    assert (out / "locust_stats.csv").read_text().count("buy ok") >= 1
    assert "PASS" in done.stdout and "FAIL" not in done.stdout


def test_loadtest_refuses_a_target_without_an_admin_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_loadtest("spike", ["--target", "http://127.0.0.1:9"]) == 2
    assert "--admin-token" in capsys.readouterr().err


def test_loadtest_reports_a_setup_failure_against_an_unreachable_target(tmp_path: Path) -> None:
    args = ["--target", "http://127.0.0.1:9", "--admin-token", "x", "--out", str(tmp_path)]
    assert run_loadtest("spike", args) == 2
