"""Driving an implementation through the adapter protocol beside the reference, one edge at a time.

The transition tour (:mod:`replication.explore.tour`) chooses the edges; this
module performs each one on both sides, as the differential kit does: the
reference world (the pure core) and the implementation read the same clock,
receive the same action, and after it their decisions, reason codes and
observations are compared (:func:`~replication.conformance.sequential.results.compare_observations`)
and the invariant catalogue is checked on the implementation's side. The
first difference raises :class:`~replication.conformance.sequential.results.ConformanceFailure`.

Only this module talks to the adapter, through the protocol of
:mod:`replication.conformance.adapters.adapter` as it stands: ``start``, the actions
and ``observe``; manifests the implementation issues are the ones it is then
asked to register and launch. Every call goes through the kit's
:class:`~replication.conformance.adapters.calls.Watchdog`, and nothing the adapter does
stops the tour with anything but a divergence of the implementation: a call
that raises anything but a denial is a ``crash``, one that does not return
within the time limit a ``timeout``, and one that returns what the protocol
does not allow (an issue that is not a ``Manifest``, an observation that is not
an ``Observation`` of the documented types, a denial without a reason code) a
``protocol`` divergence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from replication._text import decision_text
from replication.conformance.adapters.adapter import Denied
from replication.conformance.adapters.calls import (
    CallTimeout,
    ContractViolation,
    Watchdog,
    describe_call,
    locate,
    unwrapped,
)
from replication.conformance.adapters.observations import (
    Reporting,
    checked_observation,
    compare_observations,
)
from replication.conformance.sequential.engine import reason_of
from replication.conformance.sequential.results import ConformanceFailure
from replication.errors import ReplicationDenied
from replication.explore.actions import (
    CORE_TRANSITION,
    EXTERNAL,
    GHOST,
    NORMAL,
    Action,
    apply,
    forged_manifest,
    future_manifest,
    initial_world,
    launch_substitute,
    tampered,
    too_deep_manifest,
)
from replication.explore.canonical import labelling, state_key
from replication.explore.crypto import KEY
from replication.invariants import Policy, Step, check_observation, check_step, observe
from replication.model import Manifest

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.conformance.adapters.adapter import Implementation
    from replication.explore.actions import Result, World
    from replication.explore.bounds import Bound
    from replication.explore.canonical import Reductions
    from replication.invariants import Observation

__all__ = ["GAP_KINDS", "Driver", "TourError"]

#: The explorer's action kinds each optional adapter action is needed for.
GAP_KINDS: dict[str, frozenset[str]] = {
    "heartbeat": frozenset({"heartbeat"}),
    "kill": frozenset({"kill"}),
    "reap": frozenset({"reap"}),
    "kill_switch": frozenset({"kill_switch"}),
    "quarantine": frozenset({"quarantine"}),
    "release": frozenset({"release"}),
    "deregister": frozenset({"deregister"}),
    "expire": frozenset({"expire"}),
    # The tour names every worker itself: generated ids are the kit's business.
    "generated_ids": frozenset(),
}


class TourError(RuntimeError):
    """The reference left its own explored graph: a reduction would be unsound (a bug of ours)."""


class Driver:
    """One implementation and the reference, restarted together and stepped together.

    Every call into the implementation goes through ``watchdog`` (the kit's
    per-call time limit); see the module's docstring for what becomes of a
    crash, a hang or a broken protocol.
    """

    def __init__(
        self,
        factory: Callable[[], Implementation],
        bound: Bound,
        reductions: Reductions,
        *,
        unreported: frozenset[str] | None = None,
        watchdog: Watchdog | None = None,
        previous: Driver | None = None,
    ) -> None:
        self.factory = factory
        self.watchdog = watchdog or Watchdog(None)
        # A driver that goes on from ``previous`` (a second graph of one tour) keeps its
        # implementation, restarted by ``start()``, and what it learnt of its fields.
        self.implementation: Implementation | None = (
            None if previous is None else previous.implementation
        )
        # The optional fields compared when None: as the adapter declares them,
        # or learnt at first sight, as the differential kit does.
        self.reporting: Reporting = (
            Reporting(unreported) if previous is None else previous.reporting
        )
        self.bound = bound
        self.reductions = reductions
        self.policy = Policy(bound.contract, KEY.verifying_key)
        # Observations are checked without the key (the implementation's manifests).
        self.observation_policy = Policy(bound.contract)
        self.steps = 0
        self.world = initial_world(bound)
        self.issued: dict[str, Manifest | None] = {}
        self.observed: Observation | None = None
        #: The step whose call into the adapter runs, or ran last (the core transition).
        self.calling = "start"

    def clock(self) -> Any:
        """Return the time both sides read: only the tour moves it."""
        return self.world.now

    def start(self) -> None:
        """Begin a fresh system on both sides (the implementation is built on the first start)."""
        self.world = initial_world(self.bound)
        self.issued = {}
        if self.implementation is None:
            self.implementation = self._call("start", "the adapter's factory", (), self.factory)
        implementation = self.implementation
        arguments = (self.bound.contract, KEY, self.clock)
        self._call("start", "start", arguments, implementation.start, shown="contract, key, clock")
        self.observed = self._observe("start")

    # -- calling the implementation ------------------------------------------------------------

    def _call(
        self,
        action: str,
        method: str,
        arguments: tuple[Any, ...],
        function: Callable[..., Any],
        expected: str | None = None,
        *,
        denials: bool = False,
        shown: str | None = None,
    ) -> Any:
        """Return ``function(*arguments)``; anything it raises is a divergence.

        ``action`` names the step for the report (the core transition, or
        ``start``), ``method`` the adapter's method, ``expected`` the
        reference's decision, ``denials`` whether the call may refuse (an
        action may; ``start`` and ``observe`` may not: their ``Denied`` is a
        crash), ``shown`` the arguments as the report shows them (by default,
        each one's short form). Only Ctrl-C goes through.
        """

        def describe() -> str:
            return f"{method}({shown})" if shown is not None else describe_call(method, *arguments)

        self.calling = action

        try:
            return self.watchdog.call(describe, function, *arguments)
        except KeyboardInterrupt:
            raise
        except CallTimeout as timeout:
            raise self.timed_out(timeout.call, timeout.seconds) from None
        except BaseException as error:
            # Anything else the adapter raised, ``SystemExit`` and other
            # ``BaseException`` subclasses included, is the implementation's crash.
            if denials and isinstance(error, Denied | ReplicationDenied):
                raise
            error = unwrapped(error)  # SystemExit and the like, as the adapter raised them
            # The first frame is this method's: the report starts in the adapter.
            if error.__traceback__ is not None and error.__traceback__.tb_next is not None:
                error = error.with_traceback(error.__traceback__.tb_next)
            raise ConformanceFailure(
                "crash", action, expected or "no exception",
                f"{describe()} raised {type(error).__name__}: {error}", locate(error),
                decision=expected, at=self.world.now, cause=error,
            ) from error  # fmt: skip

    def timed_out(self, call: str, seconds: float) -> ConformanceFailure:
        """Return the divergence of ``call``, which did not return within ``seconds``."""
        limit = f"{seconds:g} s"
        return ConformanceFailure(
            "timeout", self.calling, f"a return within {limit}", "no return",
            [f"{call} did not return within {limit} (--timeout)"], at=self.world.now,
        )  # fmt: skip

    def _observe(self, action: str) -> Observation:
        """Call ``observe()`` and check what it returned against the protocol."""
        assert self.implementation is not None  # noqa: S101 - start() builds it first
        observed = self._call(action, "observe", (), self.implementation.observe)
        try:
            return checked_observation(observed)
        except ContractViolation as violation:
            expected = "an Observation of the documented types"
            raise _protocol(action, expected, violation.message, self.world.now) from None

    # -- one step ----------------------------------------------------------------------------------

    def step(self, kind: str, name: str | None, expected: int | None) -> Action:
        """Take the edge ``(kind, name)`` from the current state; return the concrete action.

        ``name`` is the subject's canonical name; ``expected`` the fingerprint
        of the edge's end (``None`` for an issue beyond the bound). Raises
        :class:`ConformanceFailure` at a divergence.
        """
        return self.take(self.action(kind, name), expected)

    def action(self, kind: str, name: str | None) -> Action:
        """Return the concrete action of the edge ``(kind, name)`` from the current state."""
        subject = None
        if name is not None:
            names = {
                canonical: concrete
                for concrete, canonical in labelling(self.world, self.reductions).items()
            }
            subject = names.get(name, name)
        return Action(kind, subject)

    def take(self, action: Action, expected: int | None) -> Action:
        """Perform ``action`` on both sides; raise :class:`ConformanceFailure` at a divergence."""
        world = self.world
        result = apply(world, action, self.bound)
        if expected is not None and hash(state_key(result.world, self.reductions)) != expected:
            message = f"{action} from the reference's state left the explored graph"
            raise TourError(message)
        if action.kind != "tick":
            self._drive(world, action, result)
        self.world = result.world
        return action

    def _drive(self, world: World, action: Action, expected: Result) -> None:
        name = CORE_TRANSITION[action.kind]
        want = decision_text(expected.allowed, expected.reason)
        self.steps += 1
        method, arguments = self._arguments(world, action)
        assert self.implementation is not None  # noqa: S101 - start() builds it first
        function = getattr(self.implementation, method)
        try:
            returned = self._call(name, method, arguments, function, want, denials=True)
            allowed, reason = True, None
        except (Denied, ReplicationDenied) as denied:
            returned, allowed = None, False
            try:
                reason = reason_of(denied.reason, method)
            except ContractViolation as violation:
                expected_reason = "a reason code or None"
                raise _protocol(name, expected_reason, violation.message, world.now) from None
        if method == "issue" and allowed:
            if not isinstance(returned, Manifest):
                got = f"{type(returned).__name__} {returned!r}"[:120]
                message = f"issue() must return the signed Manifest when it allows, got {got}"
                raise _protocol(name, "a Manifest", message, world.now)
            if expected.world.manifests:
                self.issued.setdefault(expected.world.manifests[-1].worker_id, returned)
        got = decision_text(allowed, reason)
        if allowed != expected.allowed:
            raise ConformanceFailure("decision", name, want, got, [str(action)], at=world.now)
        if not allowed and reason != expected.reason:
            raise ConformanceFailure("reason", name, want, got, [str(action)], at=world.now)
        observed = self._observe(name)
        before, self.observed = self.observed, observed
        timeout = self.bound.timeout if action.kind == "reap" else None
        step = Step(name, world.now, allowed, reason or "", action.subject, None, timeout)
        if before is None:  # pragma: no cover - start() observes the fresh system
            message = "step() before start()"
            raise TourError(message)
        violations = check_step(before, step, observed, self.policy)
        violations += check_observation(observed, self.observation_policy)
        if violations:
            raise ConformanceFailure(
                "invariant",
                name,
                "every invariant holds",
                ", ".join(sorted({v.invariant for v in violations})),
                [str(v) for v in violations],
                at=world.now,
            )
        reference = observe(expected.world.state)
        self.reporting.learn(reference, observed)
        differences = compare_observations(reference, observed, reported=self.reporting.reported)
        if differences:
            raise ConformanceFailure(
                "observation", name, "the reference state", "a different state", differences,
                at=world.now,
            )  # fmt: skip

    def _sent(self, worker_id: str) -> Manifest:
        """Return the implementation's manifest for ``worker_id`` (the reference's if none)."""
        manifest = self.issued.get(worker_id)
        return manifest if manifest is not None else self.world.manifest(worker_id)

    def _arguments(self, world: World, action: Action) -> tuple[str, tuple[Any, ...]]:
        """Return the adapter method ``action`` calls, and its arguments."""
        kind, subject = action.kind, action.subject
        next_id = f"w{len(world.manifests) + 1}"
        if kind in {"issue", "issue_external", "issue_unknown_parent"}:
            parent = GHOST if kind == "issue_unknown_parent" else subject
            resources = EXTERNAL if kind == "issue_external" else NORMAL
            return "issue", (parent, next_id, resources, {})
        if kind == "issue_duplicate_id":
            return "issue", (None, world.manifests[0].worker_id, NORMAL, {})
        registered = world.state.controller.registry
        manifest = {
            "register": lambda: self._sent(subject or ""),
            "launch": lambda: self._sent(subject or ""),
            "register_tampered": lambda: tampered(self._sent(subject or "")),
            "register_forged_depth": lambda: forged_manifest(world.now),
            "register_future": lambda: future_manifest(world.now, self.bound.clock_skew),
            "register_too_deep": lambda: too_deep_manifest(
                registered[subject or ""].manifest, world.now
            ),
            "launch_substitute": lambda: launch_substitute(registered[subject or ""].manifest),
        }.get(kind)
        if manifest is not None:
            return ("launch" if kind.startswith("launch") else "register"), (manifest(),)
        if kind == "reap":
            return "reap", (self.bound.timeout,)
        if kind in {"kill_switch", "expire"}:
            return kind, ()
        return kind, (subject,)


def _protocol(action: str, expected: str, message: str, now: Any) -> ConformanceFailure:
    """Return the divergence of an adapter that broke the protocol at ``action``."""
    return ConformanceFailure(
        "protocol", action, expected, "a protocol violation", [message], at=now
    )
