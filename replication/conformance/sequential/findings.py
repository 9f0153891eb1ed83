"""What a run found, as the report says it: each divergence, a hang and a replay that changed.

The runner (:mod:`replication.conformance.sequential.runner`) searches; this
module turns what a round found into the report's divergences: one with its
program and how shrinking ended, a hang with the program that led to it, a
behaviour that changed on replay (R-KIT-6, R-KIT-7). The checks' statuses are
:mod:`replication.conformance.sequential.checks`'.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

from replication.conformance.adapters.preflight import format_traceback
from replication.conformance.reports.report import Divergence
from replication.conformance.sequential.reproduction import hang_program

if TYPE_CHECKING:
    from hypothesis.errors import Flaky

    from replication.conformance.adapters.calls import CallTimeout
    from replication.conformance.sequential.results import ConformanceFailure, RunStats

__all__ = [
    "divergence_of",
    "flaky_divergence",
    "shrunk_as",
    "steps_in",
    "timeout_divergence",
]


def steps_in(program: str | None) -> int | None:
    """Return how many rule steps ``program`` holds (``None`` without a program)."""
    if program is None:
        return None
    return len(re.findall(r"^(?:\w+ = )?state\.(?!teardown)", program, flags=re.MULTILINE)) - 1


def shrunk_as(stopped: str | None) -> str:
    """Return how shrinking ended: ``minimal`` (a fixed point) or ``stopped: <why>``."""
    return "minimal" if stopped is None else f"stopped: {stopped}"


def divergence_of(
    failure: ConformanceFailure,
    program: str | None,
    stats: RunStats,
    *,
    known: bool,
    started: float,
    shrunk: str | None = None,
) -> Divergence:
    """Return ``failure`` as the report's divergence, with its program and its timings."""
    detected = stats.seconds_at_detection
    return Divergence(
        kind=failure.kind,
        action=failure.action,
        decision=failure.decision,
        expected=failure.expected,
        got=failure.got,
        text=failure.render(),
        program=program,
        known=known,
        detection_seconds=None if detected is None else detected - started,
        shrink_seconds=None if detected is None else time.perf_counter() - detected,
        examples_before=stats.examples_at_detection,
        program_steps=steps_in(program),
        clauses=failure.clauses,
        traceback=None if failure.cause is None else format_traceback(failure.cause),
        shrunk=shrunk,
    )


def timeout_divergence(timeout: CallTimeout, stats: RunStats, started: float) -> Divergence:
    """Return a hang as a divergence, with the program up to the hanging call (R-KIT-7)."""
    text = "\n".join(
        [
            f"timeout at {timeout.call.partition('(')[0]}",
            f"  {timeout.call} did not return within {timeout.seconds:g} s (--timeout)",
            (
                f"  in example {stats.examples}, after {stats.implementation_steps} steps on "
                "the implementation; the run stopped there (a hang is not shrunk)"
            ),
            *hang_program(stats, timeout.call),
        ]
    )
    return Divergence(
        kind="timeout",
        action=timeout.call.partition("(")[0],
        decision=None,
        expected=f"a return within {timeout.seconds:g} s",
        got="no return",
        text=text,
        detection_seconds=time.perf_counter() - started,
        examples_before=stats.examples,
    )


def flaky_divergence(flaky: Flaky, stats: RunStats, started: float) -> Divergence:
    """Return a behaviour that changed on replay as a divergence, with what to look for."""
    text = "\n".join(
        [
            "flaky divergence: the same program failed once and passed when replayed",
            "  the implementation's behaviour depends on more than the program: does it read",
            "  the real clock instead of the one start() gave it, or keep state across start()?",
            f"  ({type(flaky).__name__}: {str(flaky).splitlines()[0] if str(flaky) else ''})",
        ]
    )
    return Divergence(
        kind="flaky",
        action="(replay)",
        decision=None,
        expected="the same outcome on every replay",
        got="a different outcome",
        text=text,
        detection_seconds=time.perf_counter() - started,
        examples_before=stats.examples,
    )
