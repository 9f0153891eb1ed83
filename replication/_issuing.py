"""Issuing and registering: a manifest signed for a new worker, and the worker registered.

:func:`issue_manifest` and :func:`register_worker` enforce the same rules
(kill switch, depth, quota, cooldown; :mod:`replication.rules` states each
once), the second again over a manifest it did not issue, and checks its
signature, its freshness and the contract's stop conditions too.
:func:`may_spawn` asks the first question without issuing anything.
Re-exported by :mod:`replication.transitions`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replication import _validation as v
from replication import rules
from replication._frozen import EMPTY, freeze_json
from replication._outcome import (
    OK,
    Outcome,
    check_manifest,
    check_now,
    check_state,
    make_outcome,
    next_worker_id,
    replace_fields,
    with_field,
)
from replication.errors import (
    BadSignatureError,
    InvalidValueError,
    ReasonCode,
)
from replication.model import (
    Manifest,
    ResourceSpec,
    State,
    _compose,
    _event,
    _manifest,
    _registry_entry,
)
from replication.rules import deny
from replication.signing import SigningKey, _sign_new, verify_manifest

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime


__all__ = [
    "issue_manifest",
    "may_spawn",
    "register_worker",
]


def issue_manifest(
    state: State,
    key: SigningKey,
    *,
    resources: ResourceSpec,
    now: datetime,
    parent_id: str | None = None,
    state_snapshot: Mapping[str, object] | None = None,
    worker_id: str | None = None,
    depth: int | None = None,
) -> Outcome[State]:
    """Issue a signed manifest for a new worker, a child of ``parent_id`` or a root.

    The child's depth is derived from the registry, never taken from the caller;
    a ``depth`` given anyway must agree with it. Without ``worker_id`` the
    controller picks the next unused ``w<n>``.
    """
    action = "issue_manifest"
    state = check_state(state)
    now = check_now(now)
    controller = state.controller
    key = v.check_record("key", key, SigningKey, "a replication.signing.SigningKey")
    if key.verifying_key is not controller.verifying_key and (
        key.verifying_key != controller.verifying_key
    ):
        raise InvalidValueError(
            "key", "the signing key of this controller's verifying key", key.verifying_key.key_id
        )
    resources = v.check_record("resources", resources, ResourceSpec, "a ResourceSpec")
    snapshot = EMPTY if state_snapshot is None else freeze_json("state_snapshot", state_snapshot)
    if parent_id is not None:
        parent_id = v.check_identifier("parent_id", parent_id)
    if worker_id is not None:
        worker_id = v.check_identifier("worker_id", worker_id)
    if depth is not None:
        depth = v.check_int("depth", depth, minimum=0)

    # The kill switch, the quota, the parent, the depth limit, the cooldown (R-ISSUE-1).
    child_depth = rules.check_may_spawn(action, controller, parent_id, now, worker_id)
    # A claimed depth must be the derived one.
    if depth is not None and depth != child_depth:
        deny(
            action,
            ReasonCode.DEPTH_MISMATCH,
            now,
            worker_id,
            f"claimed depth {depth}, derived depth {child_depth}",
        )
    if worker_id is None:
        worker_id = next_worker_id(controller)
    # Worker ids are unique for the life of the controller.
    elif worker_id in controller.issued_ids or worker_id in controller.registered_ids:
        deny(
            action,
            ReasonCode.DUPLICATE_WORKER_ID,
            now,
            worker_id,
            f"worker id {worker_id!r} was issued or registered before",
        )

    # Every field was checked above: build the manifest once and sign it in place.
    manifest = _sign_new(
        _manifest(worker_id, parent_id, child_depth, snapshot, now, resources), key
    )
    new_controller = with_field(controller, "issued_ids", controller.issued_ids.set(worker_id, now))
    event = _event(action, now, True, OK, worker_id, (("manifest_issued", worker_id),))
    return make_outcome(_compose(new_controller, state.orchestrator), event, manifest)


def may_spawn(state: State, *, now: datetime, parent_id: str | None = None) -> Outcome[State]:
    """Say whether a child of ``parent_id`` (a root when ``None``) may be issued now.

    The checks of :func:`issue_manifest` before it looks at the requested id,
    in its order (R-SPAWN-1); nothing changes. Allowed, the event is
    ``may_spawn`` about the parent; denied, the denial is the one
    ``issue_manifest`` would give. The older API's ``can_spawn``.
    """
    action = "may_spawn"
    state = check_state(state)
    now = check_now(now)
    if parent_id is not None:
        parent_id = v.check_identifier("parent_id", parent_id)
    rules.check_may_spawn(action, state.controller, parent_id, now, parent_id)
    return make_outcome(state, _event(action, now, True, OK, parent_id))


def register_worker(state: State, manifest: Manifest, *, now: datetime) -> Outcome[State]:
    """Register the worker a signed manifest describes, if every rule allows it."""
    action = "register_worker"
    state = check_state(state)
    now = check_now(now)
    manifest = check_manifest(manifest)
    controller = state.controller
    contract = controller.contract
    registry = controller.registry
    worker_id = manifest.worker_id

    # Nothing is registered once the kill switch is engaged.
    rules.check_kill_switch(action, controller, now, worker_id)
    # Only a manifest signed by this controller's key, unchanged since, is read further.
    try:
        verify_manifest(manifest, controller.verifying_key)
    except BadSignatureError as error:
        deny(action, ReasonCode.BAD_SIGNATURE, now, worker_id, str(error))
    # A manifest is good for one registration, ever.
    if worker_id in controller.registered_ids:
        deny(
            action,
            ReasonCode.REPLAY,
            now,
            worker_id,
            f"worker id {worker_id!r} was registered before",
        )
    # A manifest from the future is forged or replayed against a skewed clock.
    if manifest.issued_at - now > contract.clock_skew:
        deny(
            action,
            ReasonCode.ISSUED_IN_FUTURE,
            now,
            worker_id,
            f"issued_at {manifest.issued_at.isoformat()} is more than "
            f"{contract.clock_skew_seconds}s after now {now.isoformat()}",
        )
    parent_id = manifest.parent_id
    expected_depth = 0
    if parent_id is not None:
        # Only a registered, unquarantined worker can be a parent.
        parent = rules.get_parent(action, controller, parent_id, now, worker_id)
        expected_depth = parent.manifest.depth + 1
    # The depth is the registry's, whatever the manifest says.
    if manifest.depth != expected_depth:
        deny(
            action,
            ReasonCode.DEPTH_MISMATCH,
            now,
            worker_id,
            f"manifest depth {manifest.depth}, derived depth {expected_depth}",
        )
    # The lineage may not grow deeper than max_depth.
    rules.check_depth_limit(action, contract, expected_depth, now, worker_id)
    # The registry never holds more than max_replicas workers.
    rules.check_quota(action, controller, now, worker_id)
    # A parent's children register at least cooldown_seconds apart.
    if parent_id is not None:
        rules.check_cooldown(action, controller, parent_id, now, worker_id)
    # The contract's stop conditions run last, in order; the first that fires decides.
    if contract.stop_conditions:
        rules.check_stop_conditions(controller, manifest, now)

    entry = _registry_entry(manifest, now, now)
    spawn_times = controller.spawn_times
    if parent_id is not None:
        spawn_times = spawn_times.set(parent_id, now)
    new_controller = replace_fields(
        controller,
        registry=registry.set(worker_id, entry),
        registered_ids=controller.registered_ids.set(worker_id, now),
        spawn_times=spawn_times,
    )
    event = _event(action, now, True, OK, worker_id, (("worker_registered", worker_id),))
    return make_outcome(_compose(new_controller, state.orchestrator), event)
