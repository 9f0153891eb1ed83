"""Which clauses of specs/ a divergence concerns, so a report can cite the rule at fault.

A divergence names an action, the decisions or reasons that differ, the
invariants violated and the observed fields that differ; each of these is
stated by a numbered clause of 01-transitions.md or 02-invariants.md.
``tests/test_clauses.py`` checks that every id here exists and that the
invariant table agrees with the ``# Spec:`` comments of
:mod:`replication.invariants`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["ACTION_CLAUSES", "FIELD_CLAUSES", "INVARIANT_CLAUSES", "REASON_CLAUSES", "cite"]

#: The clause that lists an action's checks in order, then the one that states its effect.
ACTION_CLAUSES: dict[str, tuple[str, ...]] = {
    "issue_manifest": ("R-ISSUE-1", "R-ISSUE-2"),
    "register_worker": ("R-REGISTER-1", "R-REGISTER-2"),
    "launch_worker": ("R-LAUNCH-1", "R-LAUNCH-2"),
    "heartbeat": ("R-HEARTBEAT-1", "R-HEARTBEAT-2"),
    "kill_worker": ("R-KILL-1",),
    "reap_stale_workers": ("R-REAP-1", "R-DEREGISTER-1"),
    "expire_workers": ("R-EXPIRE-1", "R-DEREGISTER-1"),
    "deregister_worker": ("R-DEREGISTER-2", "R-DEREGISTER-1"),
    "engage_kill_switch": ("R-KILLSWITCH-1",),
    "quarantine_worker": ("R-QUARANTINE-1",),
    "release_worker": ("R-QUARANTINE-3",),
}

#: The clause stating the rule behind each reason code.
REASON_CLAUSES: dict[str, str] = {
    "kill_switch": "R-KILLSWITCH-2",
    "quota": "R-QUOTA-1",
    "depth_exceeded": "R-DEPTH-2",
    "depth_mismatch": "R-DEPTH-3",
    "cooldown": "R-COOLDOWN-1",
    "parent_unknown": "R-PARENT-1",
    "parent_quarantined": "R-QUARANTINE-2",
    "stop_condition": "R-REGISTER-5",
    "bad_signature": "R-SIGN-7",
    "replay": "R-REGISTER-3",
    "issued_in_future": "R-TIME-3",
    "duplicate_worker_id": "R-ISSUE-3",
    "quarantined": "R-QUARANTINE-2",
    "already_quarantined": "R-QUARANTINE-1",
    "not_quarantined": "R-QUARANTINE-3",
    "already_running": "R-LAUNCH-1",
    "manifest_mismatch": "R-LAUNCH-1",
    "not_running": "R-BOUNDS-1",
    "expired": "R-EXPIRE-2",
}

#: The clauses each invariant enforces (the ``# Spec:`` comments of its checks).
INVARIANT_CLAUSES: dict[str, tuple[str, ...]] = {
    "INV-DEPTH": ("R-DEPTH-1", "R-DEPTH-2"),
    "INV-QUOTA": ("R-QUOTA-1",),
    "INV-KILL-SWITCH": ("R-KILLSWITCH-1", "R-KILLSWITCH-2"),
    "INV-NO-ORPHANS": ("R-LAUNCH-1", "R-DEREGISTER-1"),
    "INV-SIGNATURE": ("R-SIGN-7", "R-REGISTER-1"),
    "INV-COOLDOWN": ("R-COOLDOWN-1", "R-COOLDOWN-2"),
    "INV-QUARANTINE": ("R-QUARANTINE-1", "R-QUARANTINE-2", "R-DEREGISTER-1"),
    "INV-REAP": ("R-REAP-1", "R-DEREGISTER-1"),
    "INV-IDS": ("R-REGISTER-3",),
    "INV-DENIAL-NO-CHANGE": ("R-AUDIT-2",),
    "INV-AUDIT": ("R-AUDIT-1", "R-AUDIT-3"),
    "INV-PROCESSES": ("R-PROC-9", "R-KILLSWITCH-1"),
}

#: The clause that sets each observed field.
FIELD_CLAUSES: dict[str, str] = {
    "registered_at": "R-REGISTER-2",
    "last_heartbeat": "R-HEARTBEAT-2",
    "last_child_registered_at": "R-COOLDOWN-2",
    "manifest": "R-REGISTER-2",
    "quarantined": "R-QUARANTINE-1",
    "registered_ever": "R-REGISTER-3",
    "parent_id": "R-REGISTER-2",
    "depth": "R-DEPTH-1",
    "containers": "R-LAUNCH-2",
    "workers": "R-REGISTER-2",
    "kill switch": "R-KILLSWITCH-1",
}


def _order(clause: str) -> tuple[str, int]:
    family, _, number = clause.rpartition("-")
    return family, int(number)


def cite(
    action: str,
    *,
    reasons: Iterable[str | None] = (),
    invariants: Iterable[str] = (),
    fields: Iterable[str] = (),
) -> tuple[str, ...]:
    """Return the clause ids of the rules a divergence concerns, sorted."""
    found = set(ACTION_CLAUSES.get(action, ()))
    found.update(REASON_CLAUSES[reason] for reason in reasons if reason in REASON_CLAUSES)
    for invariant in invariants:
        found.update(INVARIANT_CLAUSES.get(invariant, ()))
    found.update(FIELD_CLAUSES[field] for field in fields if field in FIELD_CLAUSES)
    return tuple(sorted(found, key=_order))
