"""The rules several transitions share, each stated once, beside its clause.

A ``check_*`` function returns when its rule allows what is asked and raises
:class:`~replication.errors.ReplicationDenied`, carrying the reason code and
the audit event of the refusal, when it does not. The transitions of
:mod:`replication.transitions` call them in the order the specification lists
for each transition; ``issue_manifest`` and ``may_spawn`` share one order
(:func:`check_may_spawn`), ``register_worker`` has its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn

from replication.errors import (
    ReasonCode,
    ReentrancyError,
    ReplicationDenied,
    StopConditionTriggered,
)
from replication.model import ReplicationContext, _event

if TYPE_CHECKING:
    from datetime import datetime

    from replication.model import ControllerState, Manifest, RegistryEntry, ReplicationContract

__all__ = [
    "OLDER_SENTENCES",
    "check_cooldown",
    "check_depth_limit",
    "check_kill_switch",
    "check_may_spawn",
    "check_quota",
    "check_stop_conditions",
    "deny",
    "get_parent",
]

#: The older API's sentence for a denial, put first in its detail, so that code
#: matching the older messages (``match="Cooldown"``) still matches. Details are
#: for people, not normative (R-AUDIT-1).
OLDER_SENTENCES: dict[str, str] = {
    ReasonCode.KILL_SWITCH: "Kill switch engaged",
    ReasonCode.QUOTA: "Replica quota exceeded",
    ReasonCode.COOLDOWN: "Cooldown not satisfied",
    ReasonCode.DEPTH_EXCEEDED: "Depth exceeded",
    ReasonCode.PARENT_UNKNOWN: "Parent unknown",
    ReasonCode.BAD_SIGNATURE: "Manifest signature invalid",
    ReasonCode.STOP_CONDITION: "Stop condition triggered",
}


def deny(
    action: str,
    reason: ReasonCode,
    now: datetime,
    worker_id: str | None,
    detail: str,
) -> NoReturn:
    """Raise the denial of ``action`` for ``reason``, with its audit event (R-AUDIT-1/2)."""
    older = OLDER_SENTENCES.get(reason)
    if older is not None:
        detail = f"{older}: {detail}"
    event = _event(action, now, False, reason.value, worker_id, (), detail)
    raise ReplicationDenied(reason, detail, event=event)


def check_kill_switch(
    action: str, controller: ControllerState, now: datetime, worker_id: str | None
) -> None:
    """Deny growth once the kill switch is engaged (R-KILLSWITCH-2)."""
    if controller.kill_switch_engaged:
        deny(action, ReasonCode.KILL_SWITCH, now, worker_id, "the kill switch is engaged")


def check_quota(
    action: str, controller: ControllerState, now: datetime, worker_id: str | None
) -> None:
    """Deny a new worker when the registry is full (R-QUOTA-1)."""
    held, limit = len(controller.registry), controller.contract.max_replicas
    if held >= limit:
        deny(
            action,
            ReasonCode.QUOTA,
            now,
            worker_id,
            f"registry holds {held} of max_replicas {limit}",
        )


def get_parent(
    action: str, controller: ControllerState, parent_id: str, now: datetime, worker_id: str | None
) -> RegistryEntry:
    """Return the registry entry of a parent that may spawn (R-PARENT-1).

    Only a registered worker can be a parent, and a quarantined one never spawns.
    """
    parent = controller.registry.get(parent_id)
    if parent is None:
        deny(
            action,
            ReasonCode.PARENT_UNKNOWN,
            now,
            worker_id,
            f"parent {parent_id!r} is not registered",
        )
    if parent_id in controller.quarantined:
        deny(
            action,
            ReasonCode.PARENT_QUARANTINED,
            now,
            worker_id,
            f"parent {parent_id!r} is quarantined",
        )
    return parent


def check_depth_limit(
    action: str, contract: ReplicationContract, depth: int, now: datetime, worker_id: str | None
) -> None:
    """Deny a child deeper than ``max_depth`` (R-DEPTH-2)."""
    if depth > contract.max_depth:
        deny(
            action,
            ReasonCode.DEPTH_EXCEEDED,
            now,
            worker_id,
            f"child depth {depth} > max_depth {contract.max_depth}",
        )


def check_cooldown(
    action: str, controller: ControllerState, parent_id: str, now: datetime, worker_id: str | None
) -> None:
    """Deny a child sooner than ``cooldown_seconds`` after its sibling (R-COOLDOWN-1)."""
    contract = controller.contract
    last_spawn = controller.spawn_times.get(parent_id)
    if last_spawn is not None and now - last_spawn < contract.cooldown:
        deny(
            action,
            ReasonCode.COOLDOWN,
            now,
            worker_id,
            f"parent {parent_id!r} registered a child "
            f"{(now - last_spawn).total_seconds()}s ago, cooldown is "
            f"{contract.cooldown_seconds}s",
        )


def check_may_spawn(
    action: str,
    controller: ControllerState,
    parent_id: str | None,
    now: datetime,
    worker_id: str | None,
) -> int:
    """Return the depth of a new child of ``parent_id`` (0 for a root), if one may be issued now.

    The order of ``issue_manifest`` (R-ISSUE-1) and ``may_spawn`` (R-SPAWN-1):
    the kill switch, the quota, then for a child its parent, the depth limit
    and the parent's cooldown.
    """
    check_kill_switch(action, controller, now, worker_id)
    check_quota(action, controller, now, worker_id)
    if parent_id is None:
        return 0
    depth = get_parent(action, controller, parent_id, now, worker_id).manifest.depth + 1
    check_depth_limit(action, controller.contract, depth, now, worker_id)
    check_cooldown(action, controller, parent_id, now, worker_id)
    return depth


#: What a predicate may raise that is not its answer about a registration (R-REGISTER-5).
_NOT_AN_ANSWER = (RecursionError, MemoryError, ReentrancyError)


def check_stop_conditions(controller: ControllerState, manifest: Manifest, now: datetime) -> None:
    """Deny a registration a stop condition fires for; the first decides (R-REGISTER-5).

    A predicate that raises has fired: a check that fails, fails closed. What
    says nothing about the registration is not an answer, and propagates: the
    stack or memory ran out (``RecursionError``, ``MemoryError``, which replay,
    deeper or shallower, may not meet), or a call the predicate made back into a
    controller was given up (``ReentrancyError``).
    """
    context = ReplicationContext(manifest, len(controller.registry), controller.contract)
    for condition in controller.contract.stop_conditions:
        failure: Exception | None = None
        try:
            fired = condition.is_triggered(context)
            why = condition.name
        except _NOT_AN_ANSWER:
            raise
        except Exception as error:  # noqa: BLE001 - a predicate that fails, fails closed
            fired, failure = True, error
            why = f"{condition.name} raised {error!r}"
        if fired:
            detail = f"{OLDER_SENTENCES[ReasonCode.STOP_CONDITION]}: {why}"
            event = _event(
                "register_worker",
                now,
                False,
                ReasonCode.STOP_CONDITION.value,
                manifest.worker_id,
                (),
                detail,
            )
            # The denial names what the predicate raised: the facade must know (R-FACADE-2).
            raise StopConditionTriggered(condition.name, detail, event=event) from failure
