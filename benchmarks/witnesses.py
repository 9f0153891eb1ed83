"""Benchmark: is the quick start conclusive for every seed, and how long does a run take?

Runs ``replication conformance`` (the ``ci`` profile, no target: the bundled
facade) once per seed and reports how many runs were ``CONFORMANT``, the
median and the maximum time of a run, and how many needed directed programs
for witnesses the random search missed. Run from the repository root::

    python benchmarks/witnesses.py                   # 200 seeds (tens of minutes)
    python benchmarks/witnesses.py --seeds 5         # a quick look
    python benchmarks/witnesses.py --processes 2 --json out.json

Times are wall-clock seconds on a shared machine: they are figures to read,
never thresholds a test asserts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from replication.conformance.sequential.runner import DEFAULT_TARGET, run_conformance


def one_run(target: str, seed: int) -> dict[str, Any]:
    """Run the kit once with ``seed``; return its verdict, time and steered witnesses."""
    started = time.perf_counter()
    report = run_conformance(target, seed=seed)
    return {
        "seed": seed,
        "verdict": report.verdict,
        "seconds": time.perf_counter() - started,
        "steered": list(report.steered_witnesses),
        "missing": list(report.missing_witnesses),
        # What made a run not conformant: a divergence's first line (a timeout, on a
        # loaded machine, is the machine's), or the witnesses it missed.
        "failure": (report.failure or "").partition("\n")[0] or None,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit 1 when a run was not ``CONFORMANT``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200, help="how many seeds, from 0")
    parser.add_argument("--first", type=int, default=0, help="the first seed")
    parser.add_argument("--processes", type=int, default=1, help="runs at once")
    parser.add_argument("--target", default=DEFAULT_TARGET, help="module:factory")
    parser.add_argument("--json", type=Path, help="also write every run as JSON")
    arguments = parser.parse_args(argv)
    seeds = range(arguments.first, arguments.first + arguments.seeds)
    runs = []
    with ProcessPoolExecutor(max_workers=arguments.processes) as pool:
        # Each run printed as it ends, so that a benchmark cut short still says what it saw.
        for run in pool.map(one_run, [arguments.target] * len(seeds), seeds):
            runs.append(run)
            steered = f", steered: {'; '.join(run['steered'])}" if run["steered"] else ""
            failure = f" ({run['failure']})" if run["failure"] else ""
            print(f"seed {run['seed']}: {run['verdict']}{failure} in {run['seconds']:.1f} s"
                  f"{steered}", flush=True)  # fmt: skip
    seconds = [run["seconds"] for run in runs]
    conformant = sum(run["verdict"] == "CONFORMANT" for run in runs)
    steered = sum(bool(run["steered"]) for run in runs)
    print(
        f"\n{arguments.target}: {conformant} of {len(runs)} seeds CONFORMANT; "
        f"run time median {statistics.median(seconds):.1f} s, maximum {max(seconds):.1f} s "
        f"({arguments.processes} at once); {steered} runs needed a directed program"
    )
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(runs, indent=2) + "\n", encoding="utf-8")
    return 0 if conformant == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
