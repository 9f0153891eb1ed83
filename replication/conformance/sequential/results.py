"""What a conformance run produces: its failures, its statistics, the manifests it issued.

A divergence raises :class:`ConformanceFailure`, which carries everything the
report prints about it: its kind, the action, expected and got side by side,
the details, the checks that failed at that step, the clock, and the clauses
of the specification at stake. :class:`RunStats` counts what a run did.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import attrs

from replication.conformance.adapters.observations import Reporting, compare_observations
from replication.conformance.sequential.witnesses import WitnessLog
from replication.conformance.strategies import CLOCK_START

if TYPE_CHECKING:
    from datetime import datetime

    from replication.model import Manifest

__all__ = ["ConformanceFailure", "Issued", "RunStats", "compare_observations"]

#: The kinds of divergence, in the order a step checks them.
KINDS = ("crash", "decision", "reason", "invariant", "observation", "reference")


@attrs.frozen
class Issued:
    """A manifest issued by both sides for the same worker id."""

    worker_id: str
    reference: Manifest
    implementation: Manifest | None

    def __repr__(self) -> str:
        return f"Issued({self.worker_id!r})"


def clock_offset(moment: datetime) -> str:
    """Return ``moment`` as an offset from the start of every run: ``+10.000001 s``."""
    seconds = (moment - CLOCK_START).total_seconds()
    return f"+{seconds:.6f}".rstrip("0").rstrip(".") + " s"


class ConformanceFailure(AssertionError):  # noqa: N818 - it reports a failed check
    """The implementation diverged from the reference, broke an invariant, or crashed.

    ``kind`` is ``crash``, ``decision``, ``reason``, ``invariant``, ``observation``
    or ``reference`` (the reference itself broke an invariant: a bug of ours).
    ``failed`` names every check that failed at this step (``decision``,
    ``reason``, ``observation``, ``crash`` and invariant ids), ``decision`` the
    reference's decision at that step (``allowed`` or ``denied (reason)``), ``at`` the
    clock, ``clauses`` the spec clauses at stake, ``cause`` an adapter's
    exception behind a crash.
    """

    def __init__(
        self,
        kind: str,
        action: str,
        expected: str,
        got: str,
        details: list[str],
        *,
        failed: frozenset[str] = frozenset(),
        decision: str | None = None,
        at: datetime | None = None,
        clauses: tuple[str, ...] = (),
        cause: BaseException | None = None,
    ) -> None:
        self.kind = kind
        self.action = action
        self.expected = expected
        self.got = got
        self.details = details
        self.failed = failed or frozenset({kind})
        self.decision = decision
        self.at = at
        self.clauses = clauses
        self.cause = cause
        super().__init__(self.render())

    @property
    def signature(self) -> tuple[str, str, str, str]:
        """What makes two divergences the same: kind, action, expected and got."""
        return self.kind, self.action, self.expected, self.got

    def render(self) -> str:
        """Return the failure as the report prints it: expected and got, side by side."""
        width = max(len("expected"), len(self.expected))
        where = f" (clock {clock_offset(self.at)})" if self.at is not None else ""
        lines = [
            f"{self.kind} divergence at {self.action}{where}",
            f"  {'expected':<{width}}  | got",
            f"  {self.expected:<{width}}  | {self.got}",
        ]
        lines += [f"  - {detail}" for detail in self.details]
        if self.clauses:
            lines.append(f"  spec: {', '.join(self.clauses)}")
        return "\n".join(lines)


@attrs.define
class RunStats:
    """What a run did: examples, steps, checks made, witnesses, the first failure seen."""

    examples: int = 0
    steps: int = 0
    implementation_steps: int = 0
    witnesses: WitnessLog = attrs.field(factory=WitnessLog)
    violated: set[str] = attrs.field(factory=set)
    skipped_rules: tuple[str, ...] = ()
    #: How many times each check was made (``decision``, ``reason``, ``observation``,
    #: ``invariants``): a check never made is ``not checked``, never ``pass``.
    checked: Counter[str] = attrs.field(factory=Counter)
    #: Which optional fields the implementation reports (strict by default).
    reporting: Reporting = attrs.field(factory=lambda: Reporting(frozenset()))
    #: The first divergence seen, and when: what a report shows if shrinking is cut short.
    first_failure: ConformanceFailure | None = None
    examples_at_detection: int = 0
    #: The witnesses reached when the first failure was found (shrinking reaches more).
    witnesses_at_detection: Counter[str] | None = None
    seconds_at_detection: float | None = None
    #: Steps skipped because their divergence class was set aside (``--keep-going``).
    suppressed_steps: int = 0
    #: Whether any observation reported live processes (INV-PROCESSES is ``n/a`` until then).
    processes_reported: bool = False
    #: The witnesses the random search missed and a directed program reached.
    steered: list[str] = attrs.field(factory=list)
    #: The current program's contract and its calls into the adapter so far, each with
    #: the clock (rendered only if one hangs: a hang is reported with what led to it).
    contract: dict[str, Any] = attrs.field(factory=dict)
    calls: list[tuple[tuple[Any, ...], datetime]] = attrs.field(factory=list)
