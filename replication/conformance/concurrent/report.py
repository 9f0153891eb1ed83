"""What a concurrent run reports: its tally, its first failure, its verdict.

The verdict follows the sequential kit's (R-KIT-6): ``CONFORMANT`` when every
history was linearizable, no observation broke an invariant, no call crashed
and no client hung, and every concurrency witness was reached;
``INCONCLUSIVE`` when nothing failed but some witness was never reached (a
run whose calls never overlapped proved nothing about concurrency); ``NOT
CONFORMANT`` otherwise.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import attrs

from replication._text import counted, number
from replication.conformance.adapters.observations import reported_fields
from replication.conformance.sequential.checks import NEEDS
from replication.invariants import INVARIANTS

if TYPE_CHECKING:
    from replication.conformance.concurrent.history import Call, History

__all__ = ["WITNESSES", "ConcurrentReport", "Failure", "Tally"]

OVERLAP = "calls of two clients overlapped"
KILL_SWITCH_RACE = "a kill switch overlapped a launch or a registration"
REGISTER_RACE = "two registrations overlapped"
IN_FLIGHT = "an observation was taken while a call was in flight"

#: What a concurrent run must reach to prove anything about concurrency.
WITNESSES = (OVERLAP, KILL_SWITCH_RACE, REGISTER_RACE, IN_FLIGHT)


def _witnesses(first: Call, second: Call) -> list[str]:
    actions = {first.action, second.action}
    if "observe" in actions:
        return [IN_FLIGHT] if actions != {"observe"} else []
    found = [OVERLAP]
    if "kill_switch" in actions and actions & {"launch", "register"}:
        found.append(KILL_SWITCH_RACE)
    if first.action == second.action == "register":
        found.append(REGISTER_RACE)
    return found


@attrs.define
class Tally:
    """What a run did: histories, calls, overlaps, the checker's work."""

    histories: int = 0
    calls: int = 0
    configurations: int = 0
    checker_seconds: float = 0.0
    #: Histories that split into independent parts (P-compositionality).
    split: int = 0
    witnesses: Counter[str] = attrs.field(factory=Counter)
    violated: set[str] = attrs.field(factory=set)
    #: The optional observation fields some observation carried.
    reported: set[str] = attrs.field(factory=set)

    def add(self, history: History) -> None:
        """Count one history, its overlapping calls and the data its observations report."""
        self.histories += 1
        self.calls += len(history.calls)
        for first, second in history.overlapping():
            self.witnesses.update(_witnesses(first, second))
        for call in history.calls:
            if call.observation is not None:
                self.reported |= reported_fields(call.observation)

    @property
    def rate(self) -> float:
        """Histories the checker handled per second (0 before any)."""
        return self.histories / self.checker_seconds if self.checker_seconds else 0.0


#: The heading of each kind of failure in the report.
_HEADINGS = {"invariant": "INVARIANT BROKEN"}


@attrs.frozen
class Failure:
    """The first failure of a run: its kind, where, what, and the history drawn.

    ``kind`` is ``not linearizable``, ``invariant``, ``crash`` or ``hang``;
    ``recorded`` is how many calls the history (or its failing part) had,
    ``size`` how many the drawing shows, ``calls`` what each of them asked.
    ``linearizable`` is whether the history was (``None``: not checked), so
    that an invariant shown first does not hide a history no order explains.
    """

    kind: str
    history: int
    seed: int | None
    summary: str
    recorded: int
    timeline: tuple[str, ...]
    explanation: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    size: int = 0
    calls: tuple[str, ...] = ()
    linearizable: bool | None = None


@attrs.frozen
class ConcurrentReport:
    """The outcome of one concurrent run."""

    target: str
    suite_version: str
    mode: str
    clients: str
    observer: bool
    profile: str
    seed: int
    seconds: float
    tally: Tally
    failure: Failure | None

    @property
    def checks(self) -> dict[str, bool | None]:
        """Every check: ``True`` passed, ``False`` failed, ``None`` not checked (n/a)."""
        failure = self.failure
        kind = failure.kind if failure is not None else None
        stopped = kind in {"crash", "hang"}
        linearizable = kind != "not linearizable" and (
            failure is None or failure.linearizable is not False
        )
        checks: dict[str, bool | None] = {
            "no call crashed and no client hung": not stopped,
            f"every history is linearizable ({self.mode} mode)": (
                None if stopped and not self.tally.histories else linearizable
            ),
        }
        reported = self.tally.reported
        for invariant in INVARIANTS:
            name = f"{invariant.id}: {invariant.statement}"
            lacking = [need for need in NEEDS.get(invariant.id, ()) if need not in reported]
            passed = invariant.id not in self.tally.violated
            checks[name] = None if invariant.on_state is None or (lacking and passed) else passed
        return checks

    @property
    def missing_witnesses(self) -> tuple[str, ...]:
        """The concurrency witnesses no history reached."""
        return tuple(w for w in WITNESSES if not self.tally.witnesses[w])

    @property
    def verdict(self) -> str:
        """``CONFORMANT``, ``NOT CONFORMANT`` or ``INCONCLUSIVE``."""
        if self.failure is not None:
            return "NOT CONFORMANT"
        return "INCONCLUSIVE" if self.missing_witnesses else "CONFORMANT"

    @property
    def conformant(self) -> bool:
        """Whether nothing failed and every witness was reached."""
        return self.verdict == "CONFORMANT"

    def render(self) -> str:
        """Return the report as text."""
        tally = self.tally
        observer = "on" if self.observer else "off"
        lines = [
            f"replication conformance {self.suite_version}: {self.target} (concurrent)",
            (
                f"  mode {self.mode}, {self.clients}, observer {observer}, "
                f"profile {self.profile}, seed {self.seed}"
            ),
            (
                f"  {counted(tally.histories, 'history', 'histories')}, "
                f"{counted(tally.calls, 'call')}, {self.seconds:.1f} s "
                f"(checker {tally.checker_seconds:.2f} s: {tally.rate:,.0f} histories/s, "
                f"{counted(tally.configurations, 'configuration')}, "
                f"{number(tally.split)} split into parts)"
            ),
            "  the clock is frozen while calls are in flight and moves only between rounds",
            "",
            "checks:",
        ]
        marks = {True: "pass", False: "FAIL", None: "n/a "}
        lines += [f"  [{marks[ok]}] {name}" for name, ok in self.checks.items()]
        lines.append(
            "  (n/a: a step form, checked one action at a time by the sequential mode, "
            "or data the adapter does not report)"
        )
        reached = len(WITNESSES) - len(self.missing_witnesses)
        lines += ["", f"witnesses: {reached} of {len(WITNESSES)} reached"]
        lines += [f"  [{tally.witnesses[w]:>5}] {w}" for w in WITNESSES]
        failure = self.failure
        if failure is not None:
            where = (
                f"{_HEADINGS.get(failure.kind, failure.kind.upper())}: history {failure.history}"
            )
            if failure.seed is not None:
                where += f" of seed {failure.seed}"
            if failure.size:
                recorded = counted(failure.recorded, "call")
                where += f", minimised from {recorded} to {number(failure.size)}"
            lines += ["", where]
            lines += [f"  {failure.summary}", "", *failure.timeline]
            if failure.explanation:
                lines += ["", "  dead ends of the search:"]
                lines += [f"    {line}" for line in failure.explanation]
            lines += [f"  {note}" for note in failure.notes]
        elif self.missing_witnesses:
            advice = "run more histories (--histories N, or --profile deep)"
            lines += ["", f"some witnesses were never reached: {advice}"]
        lines += ["", self.verdict]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """Return the report as JSON-compatible data."""
        tally = self.tally
        return {
            "target": self.target,
            "suite_version": self.suite_version,
            "mode": self.mode,
            "clients": self.clients,
            "observer": self.observer,
            "profile": self.profile,
            "seed": self.seed,
            "seconds": self.seconds,
            "histories": tally.histories,
            "calls": tally.calls,
            "checker_seconds": tally.checker_seconds,
            "histories_per_second": tally.rate,
            "configurations": tally.configurations,
            "split": tally.split,
            "witnesses": {w: tally.witnesses[w] for w in WITNESSES},
            "missing_witnesses": list(self.missing_witnesses),
            "checks": self.checks,
            "failure": None if self.failure is None else attrs.asdict(self.failure),
            "verdict": self.verdict,
            "conformant": self.conformant,
        }
