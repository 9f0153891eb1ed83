"""benchmarks/journal.py runs end to end and reports every figure (no timing is asserted)."""

from __future__ import annotations

import math

from benchmarks import journal as bench


def test_a_tiny_run_reports_every_figure_and_a_verdict(tmp_path):
    results = bench.run(actions=80, appended=2, directory=tmp_path, racing=False)
    figures = [
        results["in_memory"]["us"],
        results["journaled_tmpfs_program"]["us"],
        results["appends_disk"]["register_ms"],
        results["appends_tmpfs"]["heartbeat_ms"],
        results["replay"]["start_us"],
        results["replay"]["verify_seconds"],
        results["trace_check"]["us"],
        results["threads_1_disk"]["decisions_per_s"],
        results["threads_8_disk"]["decisions_per_s"],
    ]
    assert all(math.isfinite(value) and value > 0 for value in figures)
    assert results["replay"]["rows"] == results["in_memory"]["calls"]
    report = bench.render(results)
    assert f"controller start on {results['replay']['rows']:,} rows" in report
    assert "8 threads, one process, disk, synced >= 5,000/s" in report
    assert results["threads_8_disk"]["decisions"] == 16
    assert list(tmp_path.iterdir()) == []  # nothing left behind
