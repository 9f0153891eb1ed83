"""Benchmark of the exhaustive explorer and of the transition tour.

Run from the repository root::

    python benchmarks/exploration.py           # the default bound, serial and parallel (minutes)
    python benchmarks/exploration.py --quick   # small bounds only, a few seconds
    python benchmarks/exploration.py --json out.json

It reports, for the default bound explored on every core and then on one:
distinct states, transitions, diameter, time, states per second and peak
memory, and the serial-to-parallel speedup; for each reduction, how many
states it saves (the factor between exploring with and without it, on a bound
where exploring without it is feasible); and for each faulty implementation
of ``tests/toy_implementation.py``, the implementation steps the transition
tour takes to its first divergence beside the steps the random conformance
kit takes (``--no-shrink``, seeds 0 to 4: the median and the range). The
machine's load average is printed beside the figures, since other work on
the machine slows the explorer down. The targets are checked against figures
of this run; nothing here is a timed assertion.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `replication` and `tests` importable
    sys.path.insert(0, str(ROOT))

import attrs  # noqa: E402

from replication.conformance.adapters.preflight import load_adapter  # noqa: E402
from replication.conformance.sequential.runner import run_conformance  # noqa: E402
from replication.explore import BOUNDS, DEFAULT, Bound, explore  # noqa: E402
from replication.explore.tour import TOUR_BOUND, reference_graph, tour, tour_kinds  # noqa: E402

#: The faulty implementations every tour must catch (those of the kit's own tests).
FAULTY = (
    "KillSwitchSurvivor",
    "DepthOffByOne",
    "IgnoresCooldown",
    "ReapLeavesContainer",
    "QuarantinedHeartbeat",
    "DuplicateLaunchReplaces",
)
#: Bounds on which the unreduced exploration is feasible, to measure each reduction.
SYMMETRY_BOUND = BOUNDS["tiny"]
TIME_BOUND = Bound(
    max_depth=0, max_replicas=1, cooldown=1, heartbeat_timeout=1, expiration=2, max_issued=1
)
#: The targets of issue 12.
TARGET_SECONDS = 60.0
TARGET_RATE = 10_000.0
TARGET_SPEEDUP = 1.6


def _load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:  # pragma: no cover - no load average on this platform
        return "not available"
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min)"


def _figures(result: Any) -> dict[str, Any]:
    return {
        "states": result.states,
        "transitions": result.transitions,
        "diameter": result.diameter,
        "seconds": round(result.seconds, 2),
        "states_per_second": round(result.states_per_second),
        "peak_memory_mib": None if result.peak_memory is None else result.peak_memory >> 20,
        "peak_worker_memory_mib": None
        if result.peak_worker_memory is None
        else result.peak_worker_memory >> 20,
        "verdict": result.verdict,
        "load_after": _load(),
    }


def _cpu_seconds() -> float:
    """CPU time of this process and of every worker it has waited for, user and system."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def measure_bound(bound: Bound, processes: int) -> dict[str, Any]:
    """Explore ``bound`` on ``processes`` processes; return its figures.

    Beside the wall-clock time, the CPU time of the parent and its workers:
    the states per CPU second hardly depend on what else the machine is doing.
    """
    cpu = _cpu_seconds()
    result = explore(bound, processes=processes)
    cpu = _cpu_seconds() - cpu
    return {
        "processes": processes,
        **_figures(result),
        "cpu_seconds": round(cpu, 2),
        "states_per_cpu_second": round(result.states / cpu) if cpu else None,
    }


def measure_reductions() -> dict[str, Any]:
    """Explore small bounds with and without each reduction; return the factors."""
    with_symmetry = explore(SYMMETRY_BOUND)
    without_symmetry = explore(SYMMETRY_BOUND, symmetry=False)
    abstract = explore(TIME_BOUND, symmetry=False, record_graph=True)
    latest = max(world.now for world in (abstract.worlds or {}).values())
    ticks = int((latest - min(w.now for w in (abstract.worlds or {}).values())).total_seconds())
    exact = explore(
        attrs.evolve(TIME_BOUND, max_ticks=ticks + 1), time_abstraction=False, symmetry=False
    )
    return {
        "symmetry": {
            "bound": SYMMETRY_BOUND.describe(),
            "states_with": with_symmetry.states,
            "states_without": without_symmetry.states,
            "factor": round(without_symmetry.states / with_symmetry.states, 2),
        },
        "time": {
            "bound": TIME_BOUND.describe() + f" (without: clock <= {ticks + 1} ticks)",
            "states_with": abstract.states,
            "states_without": exact.states,
            "factor": round(exact.states / abstract.states, 2),
        },
    }


def measure_tours(seeds: range, bound: Bound = TOUR_BOUND) -> list[dict[str, Any]]:
    """Tour each faulty implementation and run the random kit on it; return the steps of each."""
    from tests import toy_implementation as toys

    graph = reference_graph(bound, tour_kinds(load_adapter(toys.ToyImplementation).gaps))
    rows = []
    for name in FAULTY:
        factory = getattr(toys, name)
        result = tour(factory, bound, explored=graph)
        kit = []
        for seed in seeds:
            report = run_conformance(factory, seed=seed, shrink=False)
            kit.append(report.implementation_steps)
        divergence = result.divergence
        rows.append(
            {
                "implementation": name,
                "tour_steps": None if divergence is None else divergence.steps,
                "tour_divergence": None
                if divergence is None
                else f"{divergence.failure.kind} at {divergence.failure.action}",
                "kit_steps_median": statistics.median(kit),
                "kit_steps_min": min(kit),
                "kit_steps_max": max(kit),
            }
        )
    return rows


def evaluate(results: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Return each target as (verdict, name, measured)."""
    parallel, serial = results["parallel"], results["serial"]
    speedup = serial["seconds"] / parallel["seconds"]
    results["speedup"] = round(speedup, 2)
    targets = [
        (parallel["seconds"] < TARGET_SECONDS, "the bound exhausted in < 60 s",
         f"{parallel['seconds']:.1f} s"),
        (parallel["states_per_second"] >= TARGET_RATE, ">= 10,000 distinct states/s",
         f"{parallel['states_per_second']:,} states/s on {parallel['processes']} processes"),
        (speedup >= TARGET_SPEEDUP, "serial-to-parallel speedup >= 1.6x", f"{speedup:.2f}x"),
        (parallel["verdict"] == "PASS", "the bound passes", parallel["verdict"]),
    ]  # fmt: skip
    for row in results.get("tours", []):
        caught = row["tour_steps"] is not None
        targets.append((caught, f"the tour catches {row['implementation']}",
                        f"{row['tour_steps']} steps"))  # fmt: skip
    return [("PASS" if ok else "MISS", name, measured) for ok, name, measured in targets]


def _thousands(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def format_report(results: dict[str, Any]) -> str:
    """Return the results as text: figures, reductions, tours, targets."""
    lines = [
        f"machine: {results['machine']}; load average before: {results['load_before']}",
        f"bound: {results['bound']}",
        "",
        (
            f"{'run':<10} {'states':>9} {'transitions':>12} {'diameter':>8} {'seconds':>8} "
            f"{'states/s':>9} {'CPU s':>7} {'states/CPU s':>12} {'peak MiB':>9} "
            f"{'worker MiB':>10}  load after"
        ),
    ]
    for name in ("parallel", "serial"):
        row = results[name]
        worker = row["peak_worker_memory_mib"]
        lines.append(
            f"{name + ' x' + str(row['processes']):<10} {row['states']:>9,} "
            f"{row['transitions']:>12,} {row['diameter']:>8} {row['seconds']:>8.1f} "
            f"{row['states_per_second']:>9,} {row['cpu_seconds']:>7.1f} "
            f"{_thousands(row['states_per_cpu_second']):>12} {row['peak_memory_mib'] or 0:>9} "
            f"{worker if worker is not None else '-':>10}  {row['load_after']}"
        )
    lines.append(f"speedup (serial / parallel time): {results.get('speedup', 0):.2f}x")
    lines += ["", "reductions (states without / states with):"]
    for name, row in results["reductions"].items():
        lines.append(
            f"  {name:<9} {row['factor']:>6.2f}x  ({row['states_without']:,} / "
            f"{row['states_with']:,}; {row['bound']})"
        )
    if results.get("tours"):
        lines += [
            "",
            (
                "faulty implementation       tour: steps to the first divergence   "
                "random kit: steps (median, min-max)"
            ),
        ]
        for row in results["tours"]:
            lines.append(
                f"  {row['implementation']:<25} {row['tour_steps']!s:>6}  "
                f"({row['tour_divergence']:<34}) {row['kit_steps_median']:>8.0f} "
                f"({row['kit_steps_min']}-{row['kit_steps_max']})"
            )
    lines += ["", "Targets"]
    lines += [f"  {verdict}  {name}: {measured}" for verdict, name, measured in results["targets"]]
    return "\n".join(lines)


def run(*, quick: bool = False, tours: bool = True) -> dict[str, Any]:
    """Run every measurement; ``quick`` explores the tiny bound instead of the default one."""
    bound = BOUNDS["tiny"] if quick else DEFAULT
    processes = os.cpu_count() or 1
    results: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {processes} cores, "
        f"Python {platform.python_version()}",
        "load_before": _load(),
        "bound": bound.describe(),
    }
    started = time.monotonic()
    results["parallel"] = measure_bound(bound, max(2, processes))
    results["serial"] = measure_bound(bound, 1)
    results["reductions"] = measure_reductions()
    if tours:
        results["tours"] = measure_tours(range(1) if quick else range(5))
    results["targets"] = evaluate(results)
    results["total_seconds"] = round(time.monotonic() - started, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark from the command line; print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small bounds only (seconds)")
    parser.add_argument("--no-tours", action="store_true", help="skip the tour table")
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON")
    arguments = parser.parse_args(argv)
    results = run(quick=arguments.quick, tours=not arguments.no_tours)
    print(format_report(results))
    print(f"\nTotal run time {results['total_seconds']:.0f} s")
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
