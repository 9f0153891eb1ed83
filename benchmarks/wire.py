"""Benchmark of the wire protocol: the kit's steps per second over the wire and in-process.

Run from the repository root::

    python benchmarks/wire.py            # 200 programs per run, three rounds (a few minutes)
    python benchmarks/wire.py --quick    # a tiny run, to check that it works
    python benchmarks/wire.py --json out.json

The same conformance run (same seed, same programs, no shrinking) is made
against the bundled reference three ways, in alternation, round after round:
in-process (the adapter class loaded into the kit), over the wire (the same
class behind ``python -m replication.conformance.wire.serve``), and, when
``node`` is on the PATH, the JavaScript sample of examples/js. Each figure is
the kit's steps per second (the steps the report counts over the time it
reports), the median of the rounds; the target is a ratio measured in this
run: over the wire at least 50% of in-process (issue 23). Then one ``ci``
profile run of the JavaScript sample is timed whole, as ``replication
conformance --exec "node examples/js/impl.js"`` makes it (target: under 60 s).
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `replication` importable
    sys.path.insert(0, str(ROOT))

from replication.conformance.sequential.runner import run_conformance  # noqa: E402
from replication.conformance.wire.client import close_all  # noqa: E402

IN_PROCESS = "replication.conformance.adapters:ReferenceImplementation"
OVER_THE_WIRE = f"exec:{shlex.quote(sys.executable)} -m replication.conformance.wire.serve"
JAVASCRIPT = f"exec:node {shlex.quote(str(ROOT / 'examples' / 'js' / 'impl.js'))}"
#: The target: steps per second over the wire, as a share of in-process.
TARGET_RATIO = 0.5
#: The target: seconds of a ``ci`` profile run against the JavaScript sample.
TARGET_CI_SECONDS = 60.0


def steps_per_second(target: str, *, examples: int, seed: int) -> float:
    """Return the kit's steps per second of one run against ``target`` (no shrinking)."""
    report = run_conformance(
        target, profile="ci", seed=seed, max_examples=examples, shrink=False, max_time=None
    )
    if report.failures:
        message = f"{target} diverged: {report.failures[0].text.splitlines()[0]}"
        raise RuntimeError(message)
    return report.steps / report.seconds


def measure(*, examples: int, rounds: int, seed: int, ci_run: bool) -> dict[str, Any]:
    """Measure every figure in this run; return them with the verdicts on the targets."""
    targets = {"in-process": IN_PROCESS, "over the wire": OVER_THE_WIRE}
    if shutil.which("node") is not None:
        targets["JavaScript sample"] = JAVASCRIPT
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for _ in range(rounds):
        for name, target in targets.items():
            samples[name].append(steps_per_second(target, examples=examples, seed=seed))
    figures = {name: statistics.median(values) for name, values in samples.items()}
    ratio = figures["over the wire"] / figures["in-process"]
    result: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "examples per run": examples,
        "rounds": rounds,
        "seed": seed,
        "steps per second (median)": figures,
        "over the wire / in-process": ratio,
        "target met (over the wire >= 50% of in-process)": ratio >= TARGET_RATIO,
    }
    if "JavaScript sample" in figures:
        result["JavaScript sample / in-process"] = (
            figures["JavaScript sample"] / figures["in-process"]
        )
        if ci_run:
            started = time.perf_counter()
            report = run_conformance(JAVASCRIPT, profile="ci", seed=seed)
            seconds = time.perf_counter() - started
            result["JavaScript sample, ci profile"] = {
                "verdict": report.verdict,
                "seconds": seconds,
                "target met (under 60 s)": seconds < TARGET_CI_SECONDS,
            }
    close_all()
    return result


def render(result: dict[str, Any]) -> str:
    """Return the figures as the text report."""
    lines = [
        (
            f"wire protocol benchmark (Python {result['python']}, {result['machine']}): "
            f"{result['examples per run']} programs per run, median of {result['rounds']} rounds, "
            f"seed {result['seed']}"
        ),
    ]
    for name, value in result["steps per second (median)"].items():
        lines.append(f"  {name:<18} {value:>8.0f} steps/s")
    ratio = result["over the wire / in-process"]
    met = "met" if result["target met (over the wire >= 50% of in-process)"] else "MISSED"
    lines.append(f"  over the wire / in-process: {ratio:.0%} (target >= 50%: {met})")
    if "JavaScript sample / in-process" in result:
        lines.append(
            f"  JavaScript sample / in-process: {result['JavaScript sample / in-process']:.0%}"
        )
    ci = result.get("JavaScript sample, ci profile")
    if ci is not None:
        met = "met" if ci["target met (under 60 s)"] else "MISSED"
        lines.append(
            f"  JavaScript sample, ci profile: {ci['verdict']} in {ci['seconds']:.1f} s "
            f"(target < 60 s: {met})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the report (and write it as JSON with ``--json``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny run, to check it works")
    parser.add_argument("--examples", type=int, default=200, help="programs per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per target")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", metavar="PATH", default=None)
    arguments = parser.parse_args(argv)
    examples, rounds = (10, 1) if arguments.quick else (arguments.examples, arguments.rounds)
    result = measure(examples=examples, rounds=rounds, seed=arguments.seed,
                     ci_run=not arguments.quick)  # fmt: skip
    print(render(result))
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
