"""Benchmark of the reference model at fleets of up to 100,000 workers.

Run from the repository root::

    python benchmarks/bench.py                 # sizes 100,1000,10000,100000 (a few minutes)
    python benchmarks/bench.py --quick         # a tiny run, a few seconds
    python benchmarks/bench.py --json out.json  # also write every figure as JSON
    python benchmarks/bench.py --machine properties.reference_machine:ReferenceMachine

Every figure is measured in the same run as its two baselines and printed both
as an absolute time and as ratios to them:

* raw Ed25519 sign + verify (``cryptography``) over a payload of the size of a
  manifest's ``signing_payload``;
* ``benchmarks/mutable_baseline.py``, a plain mutable-dict implementation of
  the same rules (same checks in the same order, same input validation, one
  audit record per decision, manifests signed and verified over the same
  canonical bytes).

Fleets are built through the pure core (``issue_manifest``, ``register_worker``,
``launch_worker``) with a fixed key and explicit ``now`` datetimes. Single
operations are timed against a fixed pre-built state (the transitions are pure,
so each is applied to the same state, or chained where the operation is one a
live system chains), in batches that amortise the timer, and the median of the
repetitions is reported. The garbage collector stays enabled, as in real use;
the figure with it disabled is printed alongside. The targets are ratios
measured in this run; nothing here is a timed assertion.

The code: ``bench.py`` (this entry point: the run, the command line),
``config.py`` (what to run), ``fleet.py`` (the fixed world and the fleets),
``timing.py`` (the timing and memory primitives), ``workloads.py`` (the measured
operations at one fleet size), ``machines.py`` (the property-suite state
machines) and ``report.py`` (the targets and the text report).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import math
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `replication` and `benchmarks` importable
    sys.path.insert(0, str(ROOT))

import attrs  # noqa: E402
import cryptography  # noqa: E402
import immutables  # noqa: E402

from benchmarks.config import Config  # noqa: E402
from benchmarks.fleet import (  # noqa: E402
    COOLDOWN_SECONDS,
    GRANDCHILD_EVERY,
    MAX_DEPTH,
    MAX_REPLICAS,
    MAX_ROOTS,
)
from benchmarks.machines import discover_machines, run_machine  # noqa: E402
from benchmarks.report import evaluate_targets, format_report  # noqa: E402
from benchmarks.timing import loop_overhead  # noqa: E402
from benchmarks.workloads import OPERATIONS, bench_size  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "OPERATIONS",
    "Config",
    "format_report",
    "main",
    "run_benchmark",
    "run_machine",
]


# -- machine description ---------------------------------------------------------------


def describe_machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with Path("/proc/cpuinfo").open(encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        load = os.getloadavg()
    except OSError:
        load = (math.nan, math.nan, math.nan)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cryptography": cryptography.__version__,
        "attrs": attrs.__version__,
        "immutables": immutables.__version__,
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


# -- the run ------------------------------------------------------------------------------------


def run_benchmark(config: Config, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every measurement of ``config``; return the results (what ``--json`` writes)."""
    log = log or (lambda _message: None)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": describe_machine(),
        "config": {
            "sizes": list(config.sizes),
            "reps": config.reps,
            "fleet_reps": config.fleet_reps,
            "create_batch": config.create_batch,
            "op_batch": config.op_batch,
            "crypto_batch": config.crypto_batch,
            "gc": "enabled (gc-off figures alongside)" if config.gc_off else "enabled",
            "contract": {
                "max_depth": MAX_DEPTH,
                "max_replicas": MAX_REPLICAS,
                "cooldown_seconds": COOLDOWN_SECONDS,
                "clock_skew_seconds": 1.0,
            },
            "fleet": (
                f"min({MAX_ROOTS}, n/10) roots at depth 0; then every {GRANDCHILD_EVERY}th "
                "worker a child of the depth-1 worker before it (depth 2), the others children "
                "of the roots round-robin (depth 1); all launched; worker i issued, registered "
                "and launched at T0 + i ms; empty state snapshots; ResourceSpec(1.0, 512)"
            ),
        },
        "sizes": sorted(config.sizes),
        "loop_overhead_ns": loop_overhead(config.op_batch),
        "per_size": [],
    }
    for n in sorted(config.sizes):
        log(f"size {n:,}")
        results["per_size"].append(bench_size(n, config, log))
        gc.collect()
    memory_rows = [size for size in results["per_size"] if size["memory"]]
    for previous, current in itertools.pairwise(memory_rows):
        span = current["n"] - previous["n"]
        current["memory"]["core_marginal_per_worker"] = (
            current["memory"]["core_bytes"] - previous["memory"]["core_bytes"]
        ) / span
        current["memory"]["baseline_marginal_per_worker"] = (
            current["memory"]["baseline_bytes"] - previous["memory"]["baseline_bytes"]
        ) / span
    specs: Sequence[str] = config.machines if config.machines is not None else discover_machines()
    results["machines"] = []
    for spec in specs:
        log(f"state machine {spec}")
        results["machines"].append(
            run_machine(spec, steps=config.machine_steps, step_count=config.machine_step_count)
        )
    results["targets"] = evaluate_targets(results)
    with contextlib.suppress(OSError):
        results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds"] = time.perf_counter() - started
    return results


# -- command line ---------------------------------------------------------------------------


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of sizes: {text!r}") from None
    if not sizes or min(sizes) < 2:
        raise argparse.ArgumentTypeError("sizes must be integers >= 2")
    return sizes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_sizes, default=None, help="default 100,1000,10000,100000")
    parser.add_argument("--quick", action="store_true", help="a tiny run of a few seconds")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per measurement")
    parser.add_argument(
        "--machine",
        action="append",
        default=None,
        metavar="MODULE:CLASS",
        help="a RuleBasedStateMachine to time (repeatable); default: those under properties/",
    )
    parser.add_argument("--machine-steps", type=int, default=None)
    parser.add_argument("--no-memory", action="store_true", help="skip tracemalloc")
    parser.add_argument("--no-gc-off", action="store_true", help="skip the gc-disabled figures")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> Config:
    config = Config.quick() if args.quick else Config()
    changes: dict[str, Any] = {}
    if args.sizes:
        changes["sizes"] = args.sizes
    if args.reps:
        changes["reps"] = args.reps
        changes["fleet_reps"] = args.reps
    if args.machine is not None:
        changes["machines"] = tuple(args.machine)
    if args.machine_steps:
        changes["machine_steps"] = args.machine_steps
    if args.no_memory:
        changes["memory"] = False
    if args.no_gc_off:
        changes["gc_off"] = False
    return replace(config, **changes)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = config_from_args(args)
    results = run_benchmark(config, log=lambda message: print(message, file=sys.stderr))
    print(format_report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
