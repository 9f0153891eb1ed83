"""Benchmark: the default transition tour, as it is and as one graph on three manifests.

Tours the bundled facade on the ``tour`` bound (two manifests, then the full-registry
graph on a third: what ``replication explore --impl`` does), then on the ``tour``
bound with three manifests in the whole vocabulary (the one graph the tour drove
before), then the first again, in one process, and prints each run's graph, steps,
time and what it left undriven. Run from the repository root::

    python benchmarks/tour_time.py

Times are wall-clock seconds on a shared machine: compare the runs of one
invocation, never a figure of another.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import attrs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from replication.conformance.adapters.adapter import FacadeImplementation
from replication.explore.tour import TOUR_BOUND, tour

#: The tour bound's one graph on three manifests, in the whole vocabulary.
ONE_GRAPH = attrs.evolve(TOUR_BOUND, max_issued=3)


def main() -> int:
    """Print one line per tour."""
    for label, bound in (("now", TOUR_BOUND), ("one graph", ONE_GRAPH), ("now, again", TOUR_BOUND)):
        started = time.perf_counter()
        result = tour(FacadeImplementation, bound)
        wall = time.perf_counter() - started
        extra = 0 if result.supplement is None else result.supplement.states
        print(
            f"{label}: {result.verdict}, {result.exploration.states:,} + {extra:,} states, "
            f"{result.edges:,} edges, {result.steps:,} steps, exploration "
            f"{result.explored_seconds:.1f} s, driving {result.seconds:.1f} s, total {wall:.1f} s; "
            f"not driven: {', '.join(result.not_driven)}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
