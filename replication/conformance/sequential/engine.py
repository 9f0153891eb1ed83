"""The engine of the differential machine: one action on both sides, and every check.

:meth:`Engine.act` applies one action to the reference core, whose outcome is
the expectation, checks the reference against itself (its event, its
invariants), offers the step to the witness log, and then applies the action
to the implementation, if one is attached, through the run's
:class:`~replication.conformance.adapters.calls.Watchdog`. On the implementation's side
every check of the step is made before any is reported: the decision, in
``reason`` mode the reason code, the whole invariant catalogue on its
observation, and in ``observation`` mode the observation itself. A step that
fails any of them raises one :class:`ConformanceFailure` naming all that
failed, so an invariant broken by a wrong decision is reported as broken.

The rules that choose the actions are in :mod:`replication.conformance.sequential.machine`.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import attrs
from hypothesis.stateful import RuleBasedStateMachine, initialize

from replication._text import decision_text
from replication.conformance.adapters.adapter import Denied
from replication.conformance.adapters.calls import (
    ContractViolation,
    Watchdog,
    describe_call,
    locate,
    unwrapped,
    where_defined,
)
from replication.conformance.adapters.observations import checked_observation, compare_observations
from replication.conformance.fixtures import KEY, contract_from
from replication.conformance.reports.clauses import cite
from replication.conformance.sequential.results import ConformanceFailure, RunStats
from replication.conformance.strategies import CLOCK_START, contract_parameters
from replication.errors import ReasonCode, ReplicationDenied
from replication.invariants import (
    Observation,
    Policy,
    Step,
    Violation,
    check_observation,
    check_step,
    observe,
)
from replication.model import Manifest, State

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.conformance.adapters.adapter import Implementation
    from replication.model import Event
    from replication.transitions import Outcome

__all__ = ["GENERATED", "MODES", "Engine", "RunControl", "SetAside", "StopRun", "reason_of"]

#: The ``subject`` of an issue whose worker id the controller generates.
GENERATED = "<generated>"

#: Comparison modes, from the loosest to the strictest.
MODES = ("decision", "reason", "observation")


class StopRun(BaseException):
    """The run's time (``--max-time``) is up: stop generating, without a failure."""


class SetAside(BaseException):
    """A divergence listed as known was met: the run restarts with its class set aside."""

    def __init__(self, failure: ConformanceFailure) -> None:
        self.failure = failure
        super().__init__(failure.render())


@attrs.define
class RunControl:
    """How a run is driven, beyond what it compares: limits, progress, classes set aside."""

    #: Every call into the implementation goes through it (a per-call time limit).
    watchdog: Watchdog = attrs.field(factory=lambda: Watchdog(None))
    #: ``time.monotonic()`` after which the search stops (``--max-time``); ``None``: no limit.
    deadline: float | None = None
    #: Set by Ctrl-C: the next step stops the run, even if the interrupt itself was lost.
    interrupted: bool = False
    #: Called after every step with the run's statistics (progress on stderr).
    on_step: Callable[[RunStats], None] | None = None
    #: ``(action, expected decision)`` pairs skipped on both sides (``--keep-going``).
    suppressed: frozenset[tuple[str, str]] = frozenset()
    #: Divergence signatures listed as known: met, they end the round (:class:`SetAside`).
    known: frozenset[tuple[str, str, str, str]] = frozenset()


class Engine(RuleBasedStateMachine):
    """Both sides, one step at a time: the state of a run and the checks of each step."""

    factory: ClassVar[Callable[[], Implementation] | None] = None
    mode: ClassVar[str] = "observation"
    stats: ClassVar[RunStats] = RunStats()
    control: ClassVar[RunControl] = RunControl()
    #: Whether the adapter signs with its own scheme (then manifests are compared
    #: without their signatures, and INV-SIGNATURE asks the adapter's ``verify``).
    signs: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.state: State | None = None
        self.now = CLOCK_START
        self.timeout = timedelta(seconds=30)
        self.serial = 0
        self.implementation: Implementation | None = None
        self.observed: Observation | None = None
        #: The reason code of the reference's last denial (``None`` after an allowed step).
        self.last_reason: str | None = None

    @initialize(parameters=contract_parameters())
    def start(self, parameters: dict[str, Any]) -> None:
        """Begin a fresh system under a small contract, on both sides."""
        contract, self.timeout = contract_from(parameters)
        self.state = State.initial(contract, KEY.verifying_key)
        self.stats.examples += 1
        self.stats.contract, self.stats.calls = dict(parameters), []
        factory = type(self).factory
        if factory is not None:
            # A contract of its own: a stop condition with memory counts one side only.
            own, _ = contract_from(parameters)
            self.implementation = self._call(lambda: "the adapter's factory()", factory)
            self._call(lambda: "start(contract, key, clock)", self.implementation.start,
                       own, KEY, self.clock)  # fmt: skip
            self.observed = self._observe()

    def clock(self) -> Any:
        """Return the time both sides read: only the machine moves it."""
        return self.now

    @property
    def current(self) -> State:
        """The reference state now."""
        if self.state is None:  # pragma: no cover - initialize always runs first
            raise RuntimeError("the machine has not started")
        return self.state

    def next_id(self) -> str:
        """Return a worker id never used in this run."""
        self.serial += 1
        return f"k{self.serial}"

    # -- calling the implementation -------------------------------------------------------

    def _call(self, describe: Callable[[], str], function: Callable[..., Any], *args: Any) -> Any:
        """Call into the adapter outside any action (its factory, ``start``): a crash is one."""
        try:
            return self.control.watchdog.call(describe, function, *args)
        except Exception as error:
            raised = unwrapped(error)
            raise self._found(ConformanceFailure(
                "crash", describe().partition("(")[0], "no exception",
                f"{type(raised).__name__}: {raised}", locate(error), cause=error,
            )) from error  # fmt: skip

    def _observe(self) -> Observation:
        assert self.implementation is not None  # noqa: S101 - only called with one
        observed = self._call(lambda: "observe()", self.implementation.observe)
        try:
            checked = checked_observation(observed)
        except ContractViolation as violation:
            violation.where = where_defined(self.implementation.observe)
            raise
        if checked.live_processes is not None:
            self.stats.processes_reported = True
        return checked

    # -- one action, both sides -------------------------------------------------------------

    def act(
        self,
        action: str,
        reference: Callable[[State], Outcome[State]],
        implementation: Callable[[Implementation], Any] | None,
        *,
        subject: str | None,
        must_deny: frozenset[ReasonCode] | None = None,
        timeout: timedelta | None = None,
        call: tuple[Any, ...] = (),
    ) -> tuple[Outcome[State] | None, Any]:
        """Apply one action to the reference and the implementation; check everything.

        ``action`` names the core transition ``reference`` calls and ``subject``
        the worker the call names (``None`` for one on the whole fleet, or for an
        issue whose id the controller generates and that is refused); its audit
        event must say both. ``call`` is the adapter method's name and arguments,
        for reports. Returns the reference's outcome (``None`` when it denied, or
        when the step was set aside) and what the implementation returned.
        """
        control = self.control
        if control.interrupted:
            raise KeyboardInterrupt
        if (
            control.deadline is not None
            and self.stats.first_failure is None
            and time.monotonic() > control.deadline
        ):
            raise StopRun
        before = self.current
        observed_before = observe(before)
        outcome: Outcome[State] | None
        try:
            outcome = reference(before)
        except ReplicationDenied as denied:
            outcome, event, after = None, denied.event, before
            if event is None or (denied.reason.value, denied.detail) != (
                event.reason,
                event.detail,
            ):
                raise self._found(
                    ConformanceFailure(
                        "reference", action, "a denial carrying its event", repr(denied), []
                    )
                ) from denied
        else:
            event, after = outcome.event, outcome.state
        if event is None:  # pragma: no cover - the core always attaches its event
            raise RuntimeError("a core denial without an audit event")
        self.last_reason = None if event.allowed else event.reason
        if (action, decision_text(event.allowed, event.reason)) in control.suppressed:
            self.stats.suppressed_steps += 1
            return None, None
        if subject == GENERATED:
            subject = outcome.manifest.worker_id if outcome and outcome.manifest else None
        if (event.action, event.at, event.worker_id) != (action, self.now, subject) or not (
            isinstance(event.detail, str)
        ):
            raise self._found(
                ConformanceFailure(
                    "reference",
                    action,
                    f"an event for {action} about {subject} at {self.now}",
                    f"{event.action} about {event.worker_id} at {event.at}",
                    [],
                )
            )
        self._check_reference(event, must_deny)
        # ``observed_before`` was taken before the call: observing ``before`` again
        # (it is ``after`` on a denial) proves the denial wrote nothing into it.
        observed_after = observe(after)
        step = Step(
            event.action, event.at, event.allowed, event.reason, event.worker_id, (event,), timeout
        )
        policy = Policy(before.contract, KEY.verifying_key)
        violations = check_step(observed_before, step, observed_after, policy)
        violations += check_observation(observed_after, Policy(before.contract))
        if violations:
            self.stats.violated.update(v.invariant for v in violations)
            raise self._found(
                ConformanceFailure(
                    "reference",
                    event.action,
                    "no violation",
                    "violation",
                    [str(v) for v in violations],
                )
            )
        self.stats.witnesses.record(observed_before, step, observed_after, policy)
        self.state = after
        self.stats.steps += 1
        result = None
        if self.implementation is not None and implementation is not None:
            result = self._act_on_implementation(
                implementation, step, expected_after=observed_after, policy=policy,
                timeout=timeout, call=call,
            )  # fmt: skip
        if control.on_step is not None:
            control.on_step(self.stats)
        return outcome, result

    def _check_reference(self, event: Event, must_deny: frozenset[ReasonCode] | None) -> None:
        if must_deny is None:
            return
        if event.allowed or ReasonCode(event.reason) not in must_deny:
            raise self._found(
                ConformanceFailure(
                    "reference",
                    event.action,
                    f"denied with one of {sorted(must_deny)}",
                    "allowed" if event.allowed else event.reason,
                    ["a hostile input got through"],
                )
            )

    def _act_on_implementation(
        self,
        implementation: Callable[[Implementation], Any],
        expected: Step,
        *,
        expected_after: Observation,
        policy: Policy,
        timeout: timedelta | None,
        call: tuple[Any, ...],
    ) -> Any:
        assert self.implementation is not None  # noqa: S101 - checked by the caller
        assert self.observed is not None  # noqa: S101
        target = self.implementation
        expected_decision = decision_text(expected.allowed, expected.reason)
        method = call[0] if call else expected.action

        def describe() -> str:
            return describe_call(*call) if call else expected.action

        allowed, reason, result = True, None, None
        self.stats.calls.append((call or (expected.action,), self.now))
        try:
            result = self.control.watchdog.call(describe, implementation, target)
        except Denied as denied:
            allowed, reason = False, reason_of(denied.reason, method)
        except ReplicationDenied as denied:
            allowed, reason = False, denied.reason.value
        except Exception as error:
            raised = unwrapped(error)
            raise self._found(ConformanceFailure(
                "crash", expected.action, expected_decision,
                f"{describe()} raised {type(raised).__name__}: {raised}", locate(error),
                decision=expected_decision, at=self.now, clauses=cite(expected.action),
                cause=error,
            )) from error  # fmt: skip
        if allowed and expected.action == "issue_manifest" and not isinstance(result, Manifest):
            message = f"issue() must return the signed Manifest when it allows, got {result!r}"
            raise ContractViolation(message)
        observed_after = self._observe()
        observed_before, self.observed = self.observed, observed_after
        stats = self.stats
        stats.implementation_steps += 1
        stats.reporting.learn(expected_after, observed_after)

        stats.checked["decision"] += 1
        decision_ok = allowed == expected.allowed
        reason_ok = True
        if self.mode != "decision" and decision_ok and not allowed:
            stats.checked["reason"] += 1
            reason_ok = reason == expected.reason
        step = Step(
            expected.action, expected.now, allowed, reason or "", expected.worker_id, None, timeout
        )
        stats.checked["invariants"] += 1
        if self.signs:  # the kit's key says nothing about the adapter's signatures
            policy = Policy(policy.contract)
        violations = check_step(observed_before, step, observed_after, policy)
        violations += check_observation(observed_after, Policy(policy.contract))
        violations += self._signature_violations(observed_before, observed_after)
        differences: list[str] = []
        if self.mode == "observation" and decision_ok and reason_ok:
            stats.checked["observation"] += 1
            differences = compare_with(
                expected_after, observed_after, stats, signatures=not self.signs
            )
        if decision_ok and reason_ok and not violations and not differences:
            return result
        invariants = sorted({v.invariant for v in violations})
        stats.violated.update(invariants)
        failed = set(invariants)
        if not decision_ok:
            kind, got = "decision", decision_text(allowed, reason)
        elif not reason_ok:
            kind, got = "reason", decision_text(allowed, reason)
        elif violations:
            kind, got = "invariant", ", ".join(invariants)
        else:
            kind, got = "observation", "a different state"
        failed.add(kind if kind != "invariant" else invariants[0])
        if differences:
            failed.add("observation")
        fields = {difference.split(":")[0].rpartition(".")[2] for difference in differences}
        failure = ConformanceFailure(
            kind,
            expected.action,
            "every invariant holds" if kind == "invariant" else (
                "the reference state" if kind == "observation" else expected_decision
            ),
            got,
            [str(v) for v in violations] + differences,
            failed=frozenset(failed),
            decision=expected_decision,
            at=self.now,
            clauses=cite(
                expected.action,
                reasons=(expected.reason if not expected.allowed else None, reason),
                invariants=invariants,
                fields=fields,
            ),
        )  # fmt: skip
        if failure.signature in self.control.known:
            raise SetAside(failure)
        raise self._found(failure)

    def _signature_violations(self, before: Observation, after: Observation) -> list[Violation]:
        """INV-SIGNATURE through the adapter's ``verify``, for adapter-owned signing."""
        if not self.signs:
            return []
        return [
            Violation("INV-SIGNATURE", f"{worker_id}'s manifest does not verify (the adapter's "
                      "verify() says so)")
            for worker_id in sorted(after.workers.keys() - before.workers.keys())
            if (manifest := after.workers[worker_id].manifest) is not None
            and not self.verifies(manifest)
        ]  # fmt: skip

    def verifies(self, manifest: Manifest) -> bool:
        """Whether the adapter's own ``verify`` accepts ``manifest`` (adapter-owned signing)."""
        target: Any = getattr(self.implementation, "verify")  # noqa: B009 - a protocol method
        return bool(
            self.control.watchdog.call(lambda: describe_call("verify", manifest), target, manifest)
        )

    def _found(self, failure: ConformanceFailure) -> ConformanceFailure:
        """Remember the run's first failure and when it was found; return it to be raised."""
        stats = self.stats
        if stats.first_failure is None:
            stats.first_failure = failure
            stats.examples_at_detection = stats.examples
            stats.witnesses_at_detection = Counter(stats.witnesses.counts)
            stats.seconds_at_detection = time.perf_counter()
        return failure


def reason_of(reason: object, method: str) -> str | None:
    """Return a ``Denied``'s reason as an exact ``str``, or raise :class:`ContractViolation`."""
    if reason is None:
        return None
    if isinstance(reason, ReasonCode):
        return reason.value
    if not isinstance(reason, str):
        message = (
            f"{method}() raised Denied({reason!r}): the reason must be a reason code "
            "(a str such as 'quota') or None"
        )
        raise ContractViolation(message)
    return str.__str__(reason)


def compare_with(
    expected: Observation, got: Observation, stats: RunStats, *, signatures: bool
) -> list[str]:
    """Compare two observations under what the run knows the implementation reports."""
    return compare_observations(
        expected, got, reported=stats.reporting.reported, signatures=signatures
    )
