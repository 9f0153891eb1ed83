"""The timing and memory primitives every measurement goes through.

``measure`` runs a batch function (one returning ``(elapsed ns, operations)``)
after a warm-up and reports the median, min and max per-operation time and the
garbage collector's activity; ``timed`` times one call; ``traced`` reports the
bytes a build left allocated; ``loop_overhead`` is the cost of the bare loop
the batches run in.
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable


class _GcWatch:
    """Counts the collections of each generation, and the time they take, while installed."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.counts[info["generation"]] += 1
            self.seconds += time.perf_counter() - self._started

    def __enter__(self) -> _GcWatch:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self)


def measure(
    run: Callable[[], tuple[int, int]], reps: int, *, gc_enabled: bool = True
) -> dict[str, Any]:
    """Time ``run`` (which returns ``(elapsed ns, operations)``) after one warm-up.

    Returns the median, min and max of the per-operation time in microseconds,
    and the collections the garbage collector made during the timed repetitions
    (with the time they took, untimed regions included).
    """
    gc.collect()
    samples: list[float] = []
    watch = _GcWatch()
    for rep in range(reps + 1):
        enabled = gc.isenabled()
        if not gc_enabled:
            gc.disable()
        try:
            if rep:
                with watch:
                    elapsed, ops = run()
            else:
                elapsed, ops = run()
        finally:
            if enabled:
                gc.enable()
        if rep:
            samples.append(elapsed / ops / 1000.0)
    return {
        "median_us": statistics.median(samples),
        "min_us": min(samples),
        "max_us": max(samples),
        "reps": reps,
        "gc_collections": watch.counts,
        "gc_ms": watch.seconds * 1000.0,
    }


def timed(body: Callable[[], object]) -> int:
    start = time.perf_counter_ns()
    body()
    return time.perf_counter_ns() - start


def traced(build: Callable[[], Any], *, memory: bool) -> tuple[Any, int | None]:
    """Run ``build``; with ``memory``, also return the bytes it left allocated (tracemalloc)."""
    if not memory:
        return build(), None
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = build()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return result, after - before


def loop_overhead(batch: int) -> float:
    ids = [f"w{i}" for i in range(batch)]

    def run() -> tuple[int, int]:
        start = time.perf_counter_ns()
        for _worker_id in ids:
            pass
        return time.perf_counter_ns() - start, batch

    return measure(run, 5)["median_us"] * 1000.0
