"""Driving an implementation through the adapter protocol beside the reference, one edge at a time.

The transition tour (:mod:`replication.explore.tour`) chooses the edges; this
module performs each one on both sides, as the differential kit does: the
reference world (the pure core) and the implementation read the same clock,
receive the same action, and after it their decisions, reason codes and
observations are compared (:func:`~replication.conformance.results.compare_observations`)
and the invariant catalogue is checked on the implementation's side. The
first difference raises :class:`~replication.conformance.results.ConformanceFailure`.

Only this module talks to the adapter, through the protocol of
:mod:`replication.conformance.adapter` as it stands: ``start``, the actions
and ``observe``; manifests the implementation issues are the ones it is then
asked to register and launch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from replication.conformance.adapter import Denied
from replication.conformance.observations import Reporting, compare_observations
from replication.conformance.results import ConformanceFailure
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

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.conformance.adapter import Implementation
    from replication.explore.actions import Result, World
    from replication.explore.bounds import Bound
    from replication.explore.canonical import Reductions
    from replication.invariants import Observation
    from replication.model import Manifest

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
    """One implementation and the reference, restarted together and stepped together."""

    def __init__(
        self,
        factory: Callable[[], Implementation],
        bound: Bound,
        reductions: Reductions,
        *,
        unreported: frozenset[str] | None = None,
    ) -> None:
        self.implementation = factory()
        # The optional fields compared when None: as the adapter declares them,
        # or learnt at first sight, as the differential kit does.
        self.reporting = Reporting(unreported)
        self.bound = bound
        self.reductions = reductions
        self.policy = Policy(bound.contract, KEY.verifying_key)
        self.steps = 0
        self.world = initial_world(bound)
        self.issued: dict[str, Manifest | None] = {}
        self.observed: Observation | None = None

    def clock(self) -> Any:
        """Return the time both sides read: only the tour moves it."""
        return self.world.now

    def start(self) -> None:
        """Begin a fresh system on both sides."""
        self.world = initial_world(self.bound)
        self.issued = {}
        self.implementation.start(self.bound.contract, KEY, self.clock)
        self.observed = self.implementation.observe()

    def step(self, kind: str, name: str | None, expected: int | None) -> Action:
        """Take the edge ``(kind, name)`` from the current state; return the concrete action.

        ``name`` is the subject's canonical name; ``expected`` the fingerprint
        of the edge's end (``None`` for an issue beyond the bound). Raises
        :class:`ConformanceFailure` at a divergence.
        """
        world = self.world
        subject = None
        if name is not None:
            names = {
                canonical: concrete
                for concrete, canonical in labelling(world, self.reductions).items()
            }
            subject = names.get(name, name)
        action = Action(kind, subject)
        result = apply(world, action, self.bound)
        if expected is not None and hash(state_key(result.world, self.reductions)) != expected:
            message = f"{action} from the reference's state left the explored graph"
            raise TourError(message)
        if kind != "tick":
            self._drive(world, action, result)
        self.world = result.world
        return action

    def _drive(self, world: World, action: Action, expected: Result) -> None:
        implementation = self.implementation
        try:
            returned = self._call(world, action)
            allowed, reason = True, None
        except Denied as denied:
            returned, allowed, reason = None, False, denied.reason
        except ReplicationDenied as denied:
            returned, allowed, reason = None, False, denied.reason.value
        self.steps += 1
        if action.kind.startswith("issue") and allowed and expected.world.manifests:
            self.issued.setdefault(expected.world.manifests[-1].worker_id, returned)
        name = CORE_TRANSITION[action.kind]
        want = "allowed" if expected.allowed else f"denied ({expected.reason})"
        got = "allowed" if allowed else f"denied ({reason})"
        if allowed != expected.allowed:
            raise ConformanceFailure("decision", name, want, got, [str(action)])
        if not allowed and reason != expected.reason:
            raise ConformanceFailure("reason", name, want, got, [str(action)])
        observed = implementation.observe()
        before, self.observed = self.observed, observed
        timeout = self.bound.timeout if action.kind == "reap" else None
        step = Step(name, world.now, allowed, reason or "", action.subject, None, timeout)
        if before is None:  # pragma: no cover - start() observes the fresh system
            message = "step() before start()"
            raise TourError(message)
        violations = check_step(before, step, observed, self.policy)
        violations += check_observation(observed, Policy(self.bound.contract))
        if violations:
            raise ConformanceFailure(
                "invariant",
                name,
                "every invariant holds",
                ", ".join(sorted({v.invariant for v in violations})),
                [str(v) for v in violations],
            )
        reference = observe(expected.world.state)
        self.reporting.learn(reference, observed)
        differences = compare_observations(reference, observed, reported=self.reporting.reported)
        if differences:
            raise ConformanceFailure(
                "observation", name, "the reference state", "a different state", differences
            )

    def _sent(self, worker_id: str) -> Manifest:
        """Return the implementation's manifest for ``worker_id`` (the reference's if none)."""
        manifest = self.issued.get(worker_id)
        return manifest if manifest is not None else self.world.manifest(worker_id)

    def _call(self, world: World, action: Action) -> Any:
        """Perform ``action`` on the implementation through the adapter."""
        implementation, kind, subject = self.implementation, action.kind, action.subject
        next_id = f"w{len(world.manifests) + 1}"
        if kind in {"issue", "issue_external", "issue_unknown_parent"}:
            parent = GHOST if kind == "issue_unknown_parent" else subject
            resources = EXTERNAL if kind == "issue_external" else NORMAL
            return implementation.issue(parent, next_id, resources, {})
        if kind == "issue_duplicate_id":
            return implementation.issue(None, world.manifests[0].worker_id, NORMAL, {})
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
            method = implementation.launch if kind.startswith("launch") else implementation.register
            return method(manifest())
        if kind == "reap":
            return implementation.reap(self.bound.timeout)
        if kind in {"kill_switch", "expire"}:
            return getattr(implementation, kind)()
        return getattr(implementation, kind)(subject)
