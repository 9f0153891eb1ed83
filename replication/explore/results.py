"""What an exploration found: its size, its coverage, its verdict, and a counterexample.

:class:`Exploration` holds the figures (distinct states, transitions tried,
diameter, time, peak memory), the coverage (how often each action kind was
allowed or refused, and with which reason code), the witnesses reached, and,
when a check failed, a :class:`Counterexample`: the shortest sequence of
actions from the initial state to the violation. Its verdict is ``PASS`` only
when the search was exhaustive, every check held, and every reason code the
bound allows was reached.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from replication.errors import ReasonCode
from replication.explore.actions import HOSTILE_KINDS
from replication.explore.expand import ALLOWED

if TYPE_CHECKING:
    from replication.explore.actions import Action, World
    from replication.explore.bounds import Bound

__all__ = ["INTERRUPTED", "Counterexample", "Exploration"]

#: What ``stopped`` says of a search or a tour that Ctrl-C stopped: its verdict is
#: ``INTERRUPTED`` and its report shows what ran so far.
INTERRUPTED = "Ctrl-C"


@attrs.frozen
class Counterexample:
    """The shortest trace to a failed check.

    ``actions`` lead from the initial state to the state that violates
    ``check`` (``in_state``), or end with the action whose step violates it.
    ``others`` names the other checks that failed at the same depth.
    """

    check: str
    message: str
    actions: tuple[Action, ...]
    in_state: bool
    others: tuple[str, ...] = ()


@attrs.frozen
class Exploration:
    """The outcome of one exploration."""

    bound: Bound
    time_abstraction: bool
    symmetry: bool
    kinds: tuple[str, ...]
    processes: int
    states: int
    transitions: int
    diameter: int
    #: The number of states at each depth.
    levels: tuple[int, ...]
    seconds: float
    #: (action kind, ``"allowed"`` or the reason code) -> how many times.
    coverage: dict[tuple[str, str], int]
    witnesses: dict[str, int]
    counterexample: Counterexample | None
    #: Why the search stopped early (``None``: it was exhaustive, or found a violation).
    stopped: str | None
    peak_memory: int | None
    peak_worker_memory: int | None
    #: Every check that failed somewhere (all of them when not stopping at the first).
    violated: frozenset[str] = frozenset()
    #: With ``record_graph``: every state's edges as (action kind, the subject's
    #: canonical name, successor fingerprint or ``None`` beyond the bound,
    #: verdict), and each state's parent and the action from it.
    graph: dict[int, list[tuple[str, str | None, int | None, str]]] | None = attrs.field(
        default=None, repr=False, eq=False
    )
    parents: dict[int, tuple[int, Action] | None] | None = attrs.field(
        default=None, repr=False, eq=False
    )
    #: With ``record_graph``: each state's representative world (the first one found).
    worlds: dict[int, World] | None = attrs.field(default=None, repr=False, eq=False)

    @property
    def complete(self) -> bool:
        """Whether every reachable state was expanded (no violation stopped it, no limit)."""
        return self.stopped is None and self.counterexample is None

    @property
    def states_per_second(self) -> float:
        """Distinct states found per second of search."""
        return self.states / self.seconds if self.seconds > 0 else float("inf")

    @property
    def reached_codes(self) -> frozenset[ReasonCode]:
        """Every denial reason code some action received."""
        return frozenset(
            ReasonCode(verdict) for (_, verdict) in self.coverage if verdict != ALLOWED
        )

    @property
    def expected_codes(self) -> frozenset[ReasonCode]:
        """The reason codes the bound allows (see :meth:`Bound.reachable_codes`)."""
        return self.bound.reachable_codes()

    @property
    def missing_codes(self) -> tuple[str, ...]:
        """Reason codes the bound allows that no action received, sorted."""
        return tuple(sorted(code.value for code in self.expected_codes - self.reached_codes))

    @property
    def never_allowed(self) -> tuple[str, ...]:
        """Honest action kinds that were never allowed (a coverage gap)."""
        allowed = {kind for (kind, verdict) in self.coverage if verdict == ALLOWED}
        return tuple(k for k in self.kinds if k not in allowed and k not in HOSTILE_KINDS)

    @property
    def collision_probability(self) -> float:
        """TLC's optimistic estimate that two distinct states shared a 64-bit fingerprint.

        ``d * (n - d) / 2**64`` for ``d`` distinct states among ``n`` generated.
        """
        generated = max(self.transitions, self.states)
        return self.states * (generated - self.states) / 2**64

    @property
    def verdict(self) -> str:
        """``FAIL`` (a check failed), ``INCOMPLETE`` (a limit, or a code unreached) or ``PASS``.

        ``INTERRUPTED`` when Ctrl-C stopped it.
        """
        if self.stopped == INTERRUPTED:
            return "INTERRUPTED"
        if self.counterexample is not None:
            return "FAIL"
        if self.stopped is not None or self.missing_codes or self.never_allowed:
            return "INCOMPLETE"
        return "PASS"
