"""The explorer's world and every action it can take in it.

A :class:`World` is the core's :class:`~replication.model.State`, the clock,
and every manifest issued so far (in issue order: ``w1``, ``w2``, ...), which
the explorer keeps so that it can register, replay, tamper with and launch
them later, as an operator or an attacker could. An :class:`Action` names one
move: a core transition with its arguments drawn from the world (issue for
each possible parent, register each issued manifest, launch, heartbeat, kill,
reap, kill switch, quarantine, release, deregister, expire, enforce), a
hostile move (a replayed, tampered, forged or future-dated manifest, an
unknown parent, a reused id, a claimed depth), or the clock advancing one
tick. :func:`apply` performs an action through the public transitions of a
transitions module (the core's own by default) and returns what happened.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, NamedTuple

from replication import transitions as core_transitions
from replication._resolve import resolve
from replication.conformance.fixtures import tamper
from replication.errors import ReplicationDenied
from replication.explore.bounds import EPOCH, TICK
from replication.explore.crypto import KEY
from replication.model import Event, Manifest, NetworkPolicy, ResourceSpec, State
from replication.signing import sign_manifest

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime
    from types import ModuleType

    from replication.explore.bounds import Bound

__all__ = [
    "ADAPTER_KINDS",
    "CORE_TRANSITION",
    "EXTERNAL",
    "GHOST",
    "HOSTILE_KINDS",
    "KINDS",
    "NORMAL",
    "Action",
    "Result",
    "World",
    "apply",
    "enabled_actions",
    "forged_manifest",
    "future_manifest",
    "initial_world",
    "launch_substitute",
    "resolve_transitions",
    "tampered",
    "too_deep_manifest",
]

#: The resources of every honest manifest, and of one asking for external network.
NORMAL: Final = ResourceSpec(0.5, 256)
EXTERNAL: Final = ResourceSpec(0.5, 256, NetworkPolicy(allow_external=True))
#: A worker id that is never issued or registered.
GHOST: Final = "ghost"

#: Every kind of action, in the order they are tried in each world.
KINDS: Final = (
    "issue",  # a root (no subject) or a child of the registered subject
    "issue_external",  # a root asking for external network (a stop condition's business)
    "issue_unknown_parent",  # a child of a worker that was never registered
    "issue_claimed_depth",  # a root whose caller claims depth 1
    "issue_duplicate_id",  # a root under the first id ever issued
    "register",  # each issued manifest: a first registration, or a replay
    "register_tampered",  # each unregistered manifest, one field changed after signing
    "register_forged_depth",  # a root claiming depth 1, signed with the controller's key
    "register_too_deep",  # a child of each worker at max_depth, signed but never issued
    "register_future",  # a root issued one tick beyond the clock skew
    "launch",  # each issued manifest's worker
    "launch_substitute",  # each registered worker, with another validly signed manifest
    "heartbeat",  # each issued id
    "kill",  # each registered worker's container
    "quarantine",
    "release",
    "deregister",
    "enforce",
    "reap",
    "expire",
    "kill_switch",
    "tick",  # the clock advances one tick
)
#: Moves the core must refuse, whatever the state.
HOSTILE_KINDS: Final = frozenset(
    {
        "issue_unknown_parent",
        "issue_claimed_depth",
        "issue_duplicate_id",
        "register_tampered",
        "register_forged_depth",
        "register_too_deep",
        "register_future",
        "launch_substitute",
    }
)
#: The kinds the conformance adapter protocol can express (not enforce, which
#: needs usage the protocol does not report, nor a claimed depth).
ADAPTER_KINDS: Final = frozenset(KINDS) - {"issue_claimed_depth", "enforce"}

#: The core transition each kind calls (``tick`` calls none).
CORE_TRANSITION: Final = {
    **dict.fromkeys(
        ("issue", "issue_external", "issue_unknown_parent", "issue_claimed_depth",
         "issue_duplicate_id"),
        "issue_manifest",
    ),
    **dict.fromkeys(
        ("register", "register_tampered", "register_forged_depth", "register_too_deep",
         "register_future"),
        "register_worker",
    ),
    "launch": "launch_worker",
    "launch_substitute": "launch_worker",
    "heartbeat": "heartbeat",
    "kill": "kill_worker",
    "quarantine": "quarantine_worker",
    "release": "release_worker",
    "deregister": "deregister_worker",
    "enforce": "enforce_resource_bounds",
    "reap": "reap_stale_workers",
    "expire": "expire_workers",
    "kill_switch": "engage_kill_switch",
}  # fmt: skip

#: The reason every explorer-initiated kill, quarantine and deregistration gives.
REASON: Final = "explore"


class World(NamedTuple):
    """The core state, the clock, and every manifest issued so far, in issue order."""

    state: State
    now: datetime
    manifests: tuple[Manifest, ...]

    def manifest(self, worker_id: str) -> Manifest:
        """Return the manifest issued for ``worker_id``."""
        for manifest in self.manifests:
            if manifest.worker_id == worker_id:
                return manifest
        raise KeyError(worker_id)


class Action(NamedTuple):
    """One move: its kind and the worker it names (``None`` for a move on the whole system)."""

    kind: str
    subject: str | None = None

    def __str__(self) -> str:
        return self.kind if self.subject is None else f"{self.kind}({self.subject})"


class Result(NamedTuple):
    """What an action did: the world after it, its audit event, and the decision.

    On a denial ``world`` is the world before, unchanged, and ``reason`` the
    reason code; a tick has no event and ``reason`` ``"tick"``.
    """

    world: World
    event: Event | None
    allowed: bool
    reason: str


def resolve_transitions(reference: str) -> ModuleType | Any:
    """Return the transitions named ``"package.module"`` or ``"package.module:attribute"``.

    The name is resolved as every module argument is (the current directory
    searched first, as ``--impl`` does). Raises
    :class:`~replication._resolve.UnresolvedNameError` (a ``ValueError``) when it
    names nothing, what the import raises when the module cannot be imported,
    and ``ValueError`` when what it names lacks a transition the explorer calls
    (every one of :data:`CORE_TRANSITION`'s, as functions).
    """
    found: Any = resolve(reference)
    missing = sorted(
        name for name in set(CORE_TRANSITION.values()) if not callable(getattr(found, name, None))
    )
    if missing:
        message = (
            f"not a set of transitions: it lacks {', '.join(missing)} "
            "(the explored transitions have the public functions of replication.transitions)"
        )
        raise ValueError(message)
    return found


def initial_world(bound: Bound) -> World:
    """Return the world every exploration of ``bound`` starts from."""
    return World(State.initial(bound.contract, KEY.verifying_key), EPOCH, ())


# Whom each kind of action names: every issued id, every registered one, every
# one not yet registered, a root or each registered parent, or nobody (the whole system).
_ON_ISSUED: Final = frozenset({"register", "launch", "heartbeat"})
_ON_REGISTERED: Final = frozenset(
    {"launch_substitute", "kill", "quarantine", "release", "deregister", "enforce"}
)
_INTERNED: dict[tuple[str, str | None], Action] = {}


def _action(kind: str, subject: str | None) -> Action:
    """Return the one :class:`Action` for ``(kind, subject)`` (actions are made by the million)."""
    action = _INTERNED.get((kind, subject))
    if action is None:
        action = _INTERNED[kind, subject] = Action(kind, subject)
    return action


def enabled_actions(world: World, bound: Bound, kinds: Iterable[str] = KINDS) -> list[Action]:
    """Return every action to try in ``world``, in a fixed order.

    ``kinds`` restricts the vocabulary (the transition tour uses the adapter's),
    given in the order of :data:`KINDS`. Issues are tried in every world, but a
    manifest issued beyond ``bound.max_issued`` is not explored further (the
    search prunes it); the clock stops at ``bound.max_ticks``. Everything else
    is tried in every world, including the moves that must be refused.
    """
    controller = world.state.controller
    registry, ever = controller.registry, controller.registered_ids
    issued = [manifest.worker_id for manifest in world.manifests]
    registered = [worker_id for worker_id in issued if worker_id in registry]
    actions: list[Action] = []
    for kind in kinds:
        if kind in _ON_ISSUED:
            actions += [_action(kind, worker_id) for worker_id in issued]
        elif kind in _ON_REGISTERED:
            actions += [_action(kind, worker_id) for worker_id in registered]
        elif kind == "issue":
            actions.append(_action(kind, None))
            actions += [_action(kind, worker_id) for worker_id in registered]
        elif kind == "register_tampered":
            actions += [_action(kind, w) for w in issued if w not in ever]
        elif kind == "register_too_deep":
            deepest = bound.max_depth
            actions += [
                _action(kind, w) for w in registered if registry[w].manifest.depth >= deepest
            ]
        elif kind == "issue_duplicate_id":
            if issued:
                actions.append(_action(kind, None))
        elif kind == "tick":
            if bound.max_ticks is None or world.now < EPOCH + bound.max_ticks * TICK:
                actions.append(_action(kind, None))
        else:
            actions.append(_action(kind, None))
    return actions


# -- hostile manifests, built once per clock value or manifest -------------------------------

_FUTURE: dict[tuple[datetime, int], Manifest] = {}
_FORGED: dict[datetime, Manifest] = {}
_TOO_DEEP: dict[tuple[str, int, datetime], Manifest] = {}
_TAMPERED: dict[str, Manifest] = {}
_SUBSTITUTES: dict[str, Manifest] = {}


def future_manifest(now: datetime, skew_ticks: int) -> Manifest:
    """Return a root manifest signed with the controller's key, issued a tick beyond the skew."""
    cache_key = (now, skew_ticks)
    if cache_key not in _FUTURE:
        issued_at = now + (skew_ticks + 1) * TICK
        _FUTURE[cache_key] = sign_manifest(Manifest("future", None, 0, {}, issued_at, NORMAL), KEY)
    return _FUTURE[cache_key]


def forged_manifest(now: datetime) -> Manifest:
    """Return a root manifest claiming depth 1, signed with the controller's key, never issued."""
    if now not in _FORGED:
        _FORGED[now] = sign_manifest(Manifest("forged", None, 1, {}, now, NORMAL), KEY)
    return _FORGED[now]


def too_deep_manifest(parent: Manifest, now: datetime) -> Manifest:
    """Return an unissued child of ``parent``, a level deeper, signed with the controller's key."""
    cache_key = (parent.worker_id, parent.depth, now)
    if cache_key not in _TOO_DEEP:
        child = Manifest(
            f"{parent.worker_id}.deep", parent.worker_id, parent.depth + 1, {}, now, NORMAL
        )
        _TOO_DEEP[cache_key] = sign_manifest(child, KEY)
    return _TOO_DEEP[cache_key]


def tampered(manifest: Manifest) -> Manifest:
    """Return ``manifest`` with its depth changed after signing (the signature no longer fits)."""
    if manifest.signature not in _TAMPERED:
        _TAMPERED[manifest.signature] = tamper(manifest, "depth")
    return _TAMPERED[manifest.signature]


def launch_substitute(manifest: Manifest) -> Manifest:
    """Return a validly signed manifest for the same worker, asking for twice the CPU."""
    if manifest.signature not in _SUBSTITUTES:
        _SUBSTITUTES[manifest.signature] = sign_manifest(tamper(manifest, "cpu_limit"), KEY)
    return _SUBSTITUTES[manifest.signature]


# -- performing an action ----------------------------------------------------------------------


def _next_id(world: World) -> str:
    return f"w{len(world.manifests) + 1}"


def _issue(world: World, parent: str | None, resources: ResourceSpec, core: Any) -> Any:
    return core.issue_manifest(
        world.state, KEY, parent_id=parent, worker_id=_next_id(world), resources=resources,
        now=world.now,
    )  # fmt: skip


def _register(world: World, manifest: Manifest, core: Any) -> Any:
    return core.register_worker(world.state, manifest, now=world.now)


def _launch(world: World, manifest: Manifest, core: Any) -> Any:
    return core.launch_worker(world.state, manifest, now=world.now)


def _registered(world: World, worker_id: str) -> Manifest:
    return world.state.controller.registry[worker_id].manifest


_Perform = Callable[[World, Any, "Bound", Any], Any]

#: How each kind calls the core, given the world, the subject, the bound and the core.
_PERFORM: Final[dict[str, _Perform]] = {
    "issue": lambda w, s, b, core: _issue(w, s, NORMAL, core),
    "issue_external": lambda w, s, b, core: _issue(w, None, EXTERNAL, core),
    "issue_unknown_parent": lambda w, s, b, core: _issue(w, GHOST, NORMAL, core),
    "issue_claimed_depth": lambda w, s, b, core: core.issue_manifest(
        w.state, KEY, worker_id=_next_id(w), depth=1, resources=NORMAL, now=w.now
    ),
    "issue_duplicate_id": lambda w, s, b, core: core.issue_manifest(
        w.state, KEY, worker_id=w.manifests[0].worker_id, resources=NORMAL, now=w.now
    ),
    "register": lambda w, s, b, core: _register(w, w.manifest(s), core),
    "register_tampered": lambda w, s, b, core: _register(w, tampered(w.manifest(s)), core),
    "register_forged_depth": lambda w, s, b, core: _register(w, forged_manifest(w.now), core),
    "register_too_deep": lambda w, s, b, core: _register(
        w, too_deep_manifest(_registered(w, s), w.now), core
    ),
    "register_future": lambda w, s, b, core: _register(
        w, future_manifest(w.now, b.clock_skew), core
    ),
    "launch": lambda w, s, b, core: _launch(w, w.manifest(s), core),
    "launch_substitute": lambda w, s, b, core: _launch(
        w, launch_substitute(_registered(w, s)), core
    ),
    "heartbeat": lambda w, s, b, core: core.heartbeat(w.state, s, now=w.now),
    "kill": lambda w, s, b, core: core.kill_worker(w.state, s, reason=REASON, now=w.now),
    "quarantine": lambda w, s, b, core: core.quarantine_worker(
        w.state, s, reason=REASON, now=w.now
    ),
    "release": lambda w, s, b, core: core.release_worker(w.state, s, now=w.now),
    "deregister": lambda w, s, b, core: core.deregister_worker(
        w.state, s, reason=REASON, now=w.now
    ),
    "enforce": lambda w, s, b, core: core.enforce_resource_bounds(w.state, s, now=w.now),
    "reap": lambda w, s, b, core: core.reap_stale_workers(w.state, timeout=b.timeout, now=w.now),
    "expire": lambda w, s, b, core: core.expire_workers(w.state, now=w.now),
    "kill_switch": lambda w, s, b, core: core.engage_kill_switch(w.state, now=w.now),
}


def apply(
    world: World, action: Action, bound: Bound, core: ModuleType | Any = core_transitions
) -> Result:
    """Perform ``action`` in ``world`` through ``core``'s transitions; return what happened.

    ``core`` is any object with the public transitions of
    :mod:`replication.transitions` (a deliberately broken copy, in the tests).
    Exceptions other than a denial propagate, and so does a ``TypeError`` for a
    transition that returns something other than an outcome: the explorer
    reports them.
    """
    if action.kind == "tick":
        ticked = World(world.state, world.now + TICK, world.manifests)
        return Result(ticked, event=None, allowed=True, reason="tick")
    try:
        outcome = _PERFORM[action.kind](world, action.subject, bound, core)
    except ReplicationDenied as denied:
        return Result(world, event=denied.event, allowed=False, reason=denied.reason.value)
    state, event, manifest = outcome
    if not (
        isinstance(state, State)
        and isinstance(event, Event)
        and (manifest is None or isinstance(manifest, Manifest))
    ):
        message = f"{action} returned {outcome!r:.200}, not an outcome (State, Event, Manifest)"
        raise TypeError(message)
    manifests = world.manifests if manifest is None else (*world.manifests, manifest)
    if state is world.state and manifests is world.manifests:
        return Result(world, event, event.allowed, event.reason)
    return Result(World(state, world.now, manifests), event, event.allowed, event.reason)
