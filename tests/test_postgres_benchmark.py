"""benchmarks/postgres.py runs end to end on a real server and reports every figure.

No timing is asserted (the machine is shared); what is asserted is what the
benchmark's durability check found: nothing acknowledged was lost.
"""

from __future__ import annotations

import math

import pytest

from benchmarks import postgres as bench
from replication.journal.stores.cluster import find_binaries


@pytest.mark.skipif(find_binaries() is None, reason="PostgreSQL server binaries not installed")
def test_a_tiny_run_reports_every_figure_and_loses_nothing_acknowledged(tmp_path):
    """Spec: R-STORE-3, R-JOURNAL-5. Two hosts, two kills and one server restart."""
    results = bench.run(
        hosts=2, threads=2, seconds=0.5, latencies=5, kills=2, restarts=1, directory=tmp_path
    )
    figures = [
        results["postgresql"]["decisions_per_s"],
        results["sqlite"]["decisions_per_s"],
        results["latency"]["median_ms"],
        results["latency"]["p99_ms"],
        results["commit_cost"]["durable_ms"],
        results["commit_cost"]["not_durable_ms"],
    ]
    assert all(math.isfinite(value) and value > 0 for value in figures)
    assert results["postgresql"]["errors"] == []
    assert results["durability"]["restarts"] == 1
    assert results["durability"]["lost"] == 0
    report = bench.render(results)
    assert "0 acknowledged decisions lost" in report
    assert list(tmp_path.iterdir()) == []  # nothing left behind
