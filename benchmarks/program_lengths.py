"""Benchmark: how short is the program the kit prints, beside the path the tour finds?

For each built-in faulty fixture of ``tests/toy_implementation.py`` the tour
can drive (not those that sign with their own scheme), run the kit (the
``ci`` profile, shrinking to a fixed point) and the transition tour (the
``tour`` bound), and report both lengths in the same unit, calls into the
adapter (``start`` not counted; a tour's tick calls nothing), and the kit's
program in rule steps too. Run from the repository root::

    python benchmarks/program_lengths.py            # every fixture (minutes)
    python benchmarks/program_lengths.py --seed 3 --fixtures IgnoresCooldown,DepthOffByOne

Lengths are figures to read, not thresholds a test asserts.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from replication.conformance.sequential.results import ConformanceFailure
from replication.conformance.sequential.runner import run_conformance
from replication.explore.tour import reference_graph, tour
from tests import toy_implementation as toys

#: The faulty fixtures, in the order the table lists them.
FIXTURES = (
    "KillSwitchSurvivor", "DepthOffByOne", "IgnoresCooldown", "ReapLeavesContainer",
    "QuarantinedHeartbeat", "DuplicateLaunchReplaces", "SpawnTimeForgotten",
    "StopConditionFailsOpen", "ReplayCheckedAgainstRegistryOnly", "QuotaCheckedAtIssueOnly",
    "CooldownEndsLate", "ReapsAtTheBoundary", "ExpiresAtTheBoundary", "SkewBoundaryRefused",
    "GeneratedIdSkipsIssuedOnly",
)  # fmt: skip


def adapter_calls(program: str) -> int | None:
    """Run a printed program; return how many calls into the adapter it made, or ``None``."""
    namespace: dict[str, Any] = {}
    try:
        exec(program, namespace)  # noqa: S102 - the kit's own program
    except ConformanceFailure:
        return len(namespace["DifferentialMachine"].stats.calls)
    return None


def kit_length(name: str, seed: int) -> dict[str, Any]:
    """The kit's program for fixture ``name``: its rule steps and its calls into the adapter."""
    report = run_conformance(getattr(toys, name), seed=seed, shrink_time=60)
    divergence = report.failures[0] if report.failures else None
    if divergence is None or divergence.program is None:
        return {"verdict": report.verdict, "steps": None, "calls": None, "shrunk": None}
    return {
        "verdict": report.verdict,
        "steps": divergence.program_steps,
        "calls": adapter_calls(divergence.program),
        "shrunk": divergence.shrunk,
    }


def main(argv: list[str] | None = None) -> int:
    """Print the table of lengths, one fixture a row."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fixtures", default=",".join(FIXTURES))
    arguments = parser.parse_args(argv)
    graph = reference_graph()
    print("| fixture | kit: rule steps | kit: adapter calls | kit: shrinking | "
          "tour: path actions | tour: adapter calls |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name in arguments.fixtures.split(","):
        kit = kit_length(name, arguments.seed)
        toured = tour(getattr(toys, name), explored=graph)
        actions = toured.divergence.actions if toured.divergence is not None else ()
        calls = sum(1 for action in actions if action.kind != "tick")
        shrunk = re.sub(r"\s+", " ", str(kit["shrunk"]))
        print(f"| {name} | {kit['steps']} | {kit['calls']} | {shrunk} | "
              f"{len(actions) or toured.verdict} | {calls or '-'} |", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
