"""The explorer's benchmark runs and reports every figure and target (structure only, no timing)."""

from __future__ import annotations

from benchmarks import exploration
from replication.explore import Bound

ONE = Bound(
    max_depth=0, max_replicas=1, cooldown=1, heartbeat_timeout=1, expiration=None, max_issued=1
)


def test_the_report_has_every_figure_and_every_target():
    """Serial and parallel runs, CPU time, reductions, the tour table, and a verdict per target."""
    serial = exploration.measure_bound(ONE, 1)
    parallel = exploration.measure_bound(ONE, 2)
    assert serial["states"] == parallel["states"] == 20
    assert serial["cpu_seconds"] >= 0
    assert "states_per_cpu_second" in serial
    results = {
        "machine": "test",
        "load_before": "test",
        "bound": ONE.describe(),
        "serial": serial,
        "parallel": parallel,
        "reductions": {
            "symmetry": {"bound": "b", "states_with": 2, "states_without": 3, "factor": 1.5},
            "time": {"bound": "b", "states_with": 2, "states_without": 20, "factor": 10.0},
        },
        "tours": [
            {
                "implementation": "KillSwitchSurvivor",
                "tour_steps": 5,
                "tour_divergence": "x",
                "kit_steps_median": 7,
                "kit_steps_min": 6,
                "kit_steps_max": 8,
            },
        ],
    }
    results["targets"] = exploration.evaluate(results)
    text = exploration.format_report(results)
    names = [name for _, name, _ in results["targets"]]
    assert names[:3] == [
        "the bound exhausted in < 60 s",
        ">= 10,000 distinct states/s",
        "serial-to-parallel speedup >= 1.6x",
    ]
    for name in names:
        assert name in text
    assert "states/CPU s" in text
    assert "symmetry" in text
    assert "KillSwitchSurvivor" in text
