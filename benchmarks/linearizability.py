"""Benchmark of the concurrent mode: recording, checking, and what Lowe's memo buys.

Run from the repository root::

    python benchmarks/linearizability.py               # 100 + 100 histories, about a minute
    python benchmarks/linearizability.py --quick       # 20 + 10, a few seconds
    python benchmarks/linearizability.py --json out.json

Histories of the default size (3 threads, 3 rounds, the observer on, the
seeds fixed) are recorded once, then checked in the same run:

* the bundled facade's histories (linearizable), as shipped and with each
  optimisation turned off: the figure the concurrent mode's speed rests on;
* histories that are *not* linearizable (from the racy fixtures of
  ``tests/racy_implementation.py``), which the search must explore
  exhaustively, with Lowe's memo and without it (plain Wing & Gong): the
  baseline measured in the same run;
* the minimisation of those failing histories.

Each rate is the median of three passes over the same histories, after one
pass that warms the caches every variant shares (a manifest computes its
signed bytes once), except plain Wing & Gong's: one pass, it is slow. Every
figure is a rate or a ratio measured here; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `replication` and `tests` importable
    sys.path.insert(0, str(ROOT))

from replication.conformance.adapters.adapter import FacadeImplementation  # noqa: E402
from replication.conformance.concurrent.linearizability import check  # noqa: E402
from replication.conformance.concurrent.minimise import minimise  # noqa: E402
from replication.conformance.concurrent.programs import generate  # noqa: E402
from replication.conformance.concurrent.runner import Crew, execute  # noqa: E402
from tests.racy_implementation import KillSwitchRace, RegistrationRace  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.conformance.concurrent.history import History


def record(factory: Callable[[], Any], count: int, *, failing: bool) -> tuple[list[History], float]:
    """Record ``count`` histories (only non-linearizable ones if ``failing``); seconds each."""
    crew = Crew(3, observer=True)
    histories: list[History] = []
    started, tried = time.perf_counter(), 0
    try:
        while len(histories) < count:
            rng = random.Random(f"benchmark-{tried}")
            history = execute(factory, generate(rng, 3), crew=crew)
            tried += 1
            if not failing or not check(history, "observation").linearizable:
                histories.append(history)
    finally:
        crew.close()
    return histories, (time.perf_counter() - started) / tried


def rate(histories: list[History], *, repeats: int = 3, **options: bool) -> dict[str, float]:
    """Check every history with ``options``; return histories/s and configurations per history.

    The rate is the median of ``repeats`` passes (the machine may be shared).
    """
    rates, configurations = [], 0
    for _ in range(repeats):
        started, configurations = time.perf_counter(), 0
        for history in histories:
            configurations += check(history, "observation", **options).configurations
        rates.append(len(histories) / (time.perf_counter() - started))
    return {
        "histories_per_second": statistics.median(rates),
        "configurations_per_history": configurations / len(histories),
    }


def main() -> int:
    """Run the benchmark and print (and optionally write) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 + 10 histories")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    arguments = parser.parse_args()
    good_count, bad_count = (20, 10) if arguments.quick else (100, 100)

    good, record_seconds = record(FacadeImplementation, good_count, failing=False)
    bad: list[History] = []
    for factory in (KillSwitchRace, RegistrationRace):
        bad += record(factory, bad_count // 2, failing=True)[0]
    for history in good + bad:  # warm up: manifests cache their signed bytes on first use
        check(history, "observation")
    figures: dict[str, Any] = {
        "calls_per_history": sum(len(h.calls) for h in good) / len(good),
        "record_ms_per_history": 1000 * record_seconds,
        "linearizable": {
            "shipped": rate(good),
            "without_parts": rate(good, parts=False),
            "without_memo": rate(good, memo=False),
        },
        "not_linearizable": {
            "shipped": rate(bad),
            "plain_wing_gong": rate(bad, repeats=1, memo=False, parts=False),
        },
        "split_histories": sum(check(h, "observation").parts > 1 for h in good),
    }
    started = time.perf_counter()
    for history in bad:
        verdict = check(history, "observation")
        assert verdict.failing is not None
        minimise(verdict.failing, "observation", verdict.keys)
    figures["minimise_ms_per_history"] = 1000 * (time.perf_counter() - started) / len(bad)
    shipped = figures["not_linearizable"]["shipped"]
    plain = figures["not_linearizable"]["plain_wing_gong"]
    figures["memo_speedup_on_failing"] = (
        shipped["histories_per_second"] / plain["histories_per_second"]
    )

    good_rate = figures["linearizable"]["shipped"]
    print(f"default size: 3 threads, 3 rounds, {figures['calls_per_history']:.1f} calls a history")
    print(f"  recording (the facade):      {figures['record_ms_per_history']:.1f} ms a history")
    print(f"  checking, linearizable:      {good_rate['histories_per_second']:.0f} histories/s, "
          f"{good_rate['configurations_per_history']:.1f} configurations each")  # fmt: skip
    for name, label in (("without_parts", "  ... without splitting"),
                        ("without_memo", "  ... without the memo")):  # fmt: skip
        other = figures["linearizable"][name]
        print(f"{label:<31}{other['histories_per_second']:.0f} histories/s")
    print(f"  split into parts:            {figures['split_histories']} of {len(good)}")
    print(f"  checking, not linearizable:  {shipped['histories_per_second']:.1f} histories/s, "
          f"{shipped['configurations_per_history']:.0f} configurations each")  # fmt: skip
    print(f"  ... plain Wing & Gong:       {plain['histories_per_second']:.2f} histories/s, "
          f"{plain['configurations_per_history']:.0f} configurations each "
          f"(the memo: {figures['memo_speedup_on_failing']:.0f}x faster)")  # fmt: skip
    print(f"  minimising a failing one:    {figures['minimise_ms_per_history']:.0f} ms")
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
