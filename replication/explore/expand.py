"""Expanding states: every action tried, every invariant checked, every outcome counted.

:func:`expand_chunk` takes some states of the frontier and, for each, checks
the state form of every invariant of the catalogue on it, tries every enabled
action, checks the step form of every invariant across each action, checks
deadlock-freedom, and records each successor's fingerprint, the coverage
(which actions and which denial reason codes occurred) and the witnesses
reached. It is a pure function of its inputs, so the search can run it in
any process on any partition of the frontier and merge the results.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs

from replication.conformance.sequential.witnesses import WitnessLog
from replication.explore.actions import CORE_TRANSITION, HOSTILE_KINDS, apply, enabled_actions
from replication.explore.canonical import labelling, state_key
from replication.explore.crypto import KEY
from replication.invariants import (
    INVARIANTS,
    Policy,
    Step,
    check_observation,
    check_step,
    observe,
)

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

    from replication.explore.actions import Action, Result, World
    from replication.explore.bounds import Bound
    from replication.explore.canonical import Reductions
    from replication.invariants import Observation, Violation
    from replication.model import State

__all__ = [
    "ALLOWED",
    "CHECK_ORDER",
    "CRASH",
    "DEADLOCK",
    "HOSTILE",
    "ChunkResult",
    "Config",
    "Edge",
    "Finding",
    "check_state_of",
    "expand_chunk",
]

#: The verdict of an allowed action in the coverage counts.
ALLOWED = "allowed"
#: The explorer's own checks beside the invariant catalogue (specs/06-exploration.md).
DEADLOCK = "DEADLOCK"
HOSTILE = "HOSTILE"
CRASH = "CRASH"

#: Every check, in the order a counterexample names them: the catalogue's, then the explorer's.
CHECK_ORDER = (*(invariant.id for invariant in INVARIANTS), DEADLOCK, HOSTILE, CRASH)

#: An edge of the explored graph: (action kind, the subject's canonical name,
#: the successor's fingerprint, the verdict); the successor of an issue beyond
#: the bound is ``None``.
Edge = tuple[str, "str | None", "int | None", str]


@attrs.frozen
class Config:
    """What to explore: the bound, the reductions, the vocabulary and the transitions."""

    bound: Bound
    reductions: Reductions
    kinds: tuple[str, ...]
    core: ModuleType | Any
    record_graph: bool = False


class Finding(NamedTuple):
    """A failed check: the state (frontier index), the action (index, or ``None``), what, why."""

    state: int
    action: int | None
    check: str
    message: str


@attrs.define
class ChunkResult:
    """What expanding some states of the frontier found."""

    #: Per expanded state (frontier index): its successors as (action index, fingerprint).
    successors: dict[int, list[tuple[int, int]]] = attrs.field(factory=dict)
    #: Per expanded state, with ``record_graph``: every edge.
    edges: dict[int, list[Edge]] = attrs.field(factory=dict)
    transitions: int = 0
    coverage: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    #: Witnesses of allowed steps (the denial witnesses are the coverage's refusals).
    witnesses: Counter[str] = attrs.field(factory=Counter)
    findings: list[Finding] = attrs.field(factory=list)
    #: ``False`` when the deadline passed before every state was expanded.
    complete: bool = True


def check_state_of(state: State, config: Config) -> list[Violation]:
    """Return every state invariant ``state`` violates, measured against the bound's policy."""
    return check_observation(observe(state), Policy(config.bound.contract, KEY.verifying_key))


def expand_chunk(
    config: Config,
    frontier: Sequence[tuple[int, World]],
    indices: Sequence[int],
    deadline: float | None = None,
) -> ChunkResult:
    """Expand the states ``frontier[i]`` for ``i`` in ``indices``; stop at ``deadline``."""
    expander = _Expander(config)
    for index in indices:
        if deadline is not None and time.monotonic() > deadline:
            expander.result.complete = False
            break
        fingerprint, world = frontier[index]
        expander.expand(index, fingerprint, world)
    expander.result.witnesses = expander.log.counts
    return expander.result


class _Expander:
    """Expands states one by one into one :class:`ChunkResult`."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.bound = config.bound
        self.policy = Policy(config.bound.contract, KEY.verifying_key)
        self.result = ChunkResult()
        self.log = WitnessLog()

    def expand(self, index: int, fingerprint: int, world: World) -> None:
        """Check one state, try every action from it, and check each step."""
        config, result = self.config, self.result
        before = observe(world.state)
        self._found(index, None, check_observation(before, self.policy))
        actions = enabled_actions(world, self.bound, config.kinds)
        names = labelling(world, config.reductions) if config.record_graph else None
        successors: list[tuple[int, int]] = []
        edges: list[Edge] = []
        # A step's checks are a pure function of (observation before, step, observation
        # after): refusals that yield equal steps (every issue refused for the quota,
        # say) are checked once.
        refusals: dict[tuple[object, ...], list[Violation]] = {}
        any_allowed = False
        bound, core, coverage = self.bound, config.core, result.coverage
        result.transitions += len(actions)
        for number, action in enumerate(actions):
            try:
                outcome = apply(world, action, bound, core)
            except KeyboardInterrupt:
                raise
            except BaseException as error:  # noqa: BLE001 - a crash of the explored code is a finding
                # SystemExit and the like too: in a worker process it would end the
                # worker, and the pool would wait for its part for ever.
                result.findings.append(Finding(index, number, CRASH, f"{action} raised {error!r}"))
                continue
            verdict = ALLOWED if outcome.allowed else outcome.reason
            coverage[action.kind, verdict] += 1
            successor = self._successor(index, number, fingerprint, world, outcome)
            if successor is not None and successor != fingerprint:
                successors.append((number, successor))
            if names is not None:
                subject = action.subject
                edges.append((action.kind, names.get(subject, subject) if subject else None,
                              successor, verdict))  # fmt: skip
            if action.kind != "tick":
                any_allowed = any_allowed or outcome.allowed
                self._check_step(index, number, action, world, before, outcome, refusals)
        if not any_allowed and any(action.kind != "tick" for action in actions):
            message = "no transition is allowed in this state"
            result.findings.append(Finding(index, None, DEADLOCK, message))
        result.successors[index] = successors
        if names is not None:
            result.edges[index] = edges

    def _found(self, index: int, number: int | None, violations: list[Violation]) -> None:
        if violations:
            self.result.findings += [
                Finding(index, number, v.invariant, v.message) for v in violations
            ]

    def _successor(
        self, index: int, number: int, fingerprint: int, world: World, outcome: Result
    ) -> int | None:
        """Return the successor's fingerprint, or ``None`` for an issue beyond the bound."""
        after = outcome.world
        if after is world:
            return fingerprint
        if len(after.manifests) > self.bound.max_issued:
            # Beyond the bound: its state is checked here, and not explored further.
            self._found(index, number, check_observation(observe(after.state), self.policy))
            return None
        return hash(state_key(after, self.config.reductions))

    def _check_step(  # noqa: PLR0917 - private, called once per action
        self,
        index: int,
        number: int,
        action: Action,
        world: World,
        before: Observation,
        outcome: Result,
        refusals: dict[tuple[object, ...], list[Violation]],
    ) -> None:
        """Check every step invariant across one action, and the explorer's own step checks."""
        event = outcome.event
        if event is None:
            message = f"{action} produced no audit event"
            self.result.findings.append(Finding(index, number, "INV-AUDIT", message))
            return
        name = CORE_TRANSITION[action.kind]
        timeout = self.bound.timeout if action.kind == "reap" else None
        after_state = outcome.world.state
        step = None
        if after_state is world.state:
            after = before
            # Everything the step and its event hold (``now`` is the state's own).
            key = (
                (name, outcome.allowed, outcome.reason, timeout),
                (event.action, event.at, event.allowed, event.reason),
                (event.worker_id, event.effects, event.detail),
            )
            violations = refusals.get(key)
            if violations is None:
                step = Step(name, world.now, outcome.allowed, outcome.reason, event.worker_id,
                            (event,), timeout)  # fmt: skip
                violations = refusals[key] = check_step(before, step, before, self.policy)
        else:
            after = observe(after_state)
            step = Step(name, world.now, outcome.allowed, outcome.reason, event.worker_id,
                        (event,), timeout)  # fmt: skip
            violations = check_step(before, step, after, self.policy)
        self._found(index, number, violations)
        if not outcome.allowed:
            self._refused(index, number, action, before)
            return
        if step is None:
            step = Step(
                name, world.now, outcome.allowed, outcome.reason, event.worker_id, (event,), timeout
            )
        self.log.record(before, step, after, self.policy)
        if action.kind in HOSTILE_KINDS:
            message = f"the hostile move {action} was allowed"
            self.result.findings.append(Finding(index, number, HOSTILE, message))

    def _refused(self, index: int, number: int, action: Action, before: Observation) -> None:
        """Check a refusal: the kill switch is never refused before it is engaged."""
        if action.kind == "kill_switch" and not before.kill_switch_engaged:
            message = "the kill switch was refused before it was engaged"
            self.result.findings.append(Finding(index, number, DEADLOCK, message))
