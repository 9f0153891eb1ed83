"""Everything ``replication`` raises, and the reason codes of its denials.

The exception tree::

    ReplicationError                          root: catch this to catch anything of ours
    ├── ReplicationDenied                     a transition refused; .reason is a ReasonCode,
    │   │                                     .event the audit record of the refusal
    │   └── StopConditionTriggered            .condition names the stop condition that fired
    ├── InvalidInputError                     bad input: .field, .expected, .got
    │   ├── InvalidValueError (also ValueError)
    │   └── InvalidTypeError  (also TypeError)
    ├── ImmutableError    (also attrs' FrozenInstanceError, so AttributeError)
    │                                         an attempt to assign to a frozen record
    ├── AuditError                            the decision stands (and was applied, if
    │                                         allowed), but the audit sink failed to record it
    ├── ReentrancyError                       a facade call was not applied: the state kept
    │                                         changing under it (callbacks calling back in)
    ├── SignatureError                        signing and key problems
    │   ├── InvalidKeyError (also ValueError) a key that must not be used (small order, ...)
    │   └── BadSignatureError                 a signature that does not verify
    └── JournalError                          the durable journal could not be used; its
                                              own tree is in replication.journal.errors

A *denial* is the normal outcome of a request the policy refuses; it is a value
with a stable reason code, never a crash. Bad input (a negative CPU limit, a
naive datetime) is a usage error and raises ``InvalidValueError`` or
``InvalidTypeError`` (both ``InvalidInputError``) naming the field, what was
expected and what was received.

The exceptions the ground floor raises (bad input, a frozen record, keys and
signatures) are defined in :mod:`replication._exceptions`, below the modules
that raise them, and re-exported here; the ones that carry an audit event are
defined here, above the records.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from replication._exceptions import (
    BadSignatureError,
    ImmutableError,
    InvalidInputError,
    InvalidKeyError,
    InvalidTypeError,
    InvalidValueError,
    ReplicationError,
    SignatureError,
)

if TYPE_CHECKING:
    from replication._records import Event

__all__ = [
    "AuditError",
    "BadSignatureError",
    "ImmutableError",
    "InvalidInputError",
    "InvalidKeyError",
    "InvalidTypeError",
    "InvalidValueError",
    "ReasonCode",
    "ReentrancyError",
    "ReplicationDenied",
    "ReplicationError",
    "SignatureError",
    "StopConditionTriggered",
]


class ReasonCode(enum.StrEnum):
    """Why a transition was denied: stable, machine-readable, part of the spec."""

    #: The kill switch is engaged; nothing may be issued, registered or launched again.
    KILL_SWITCH = "kill_switch"
    #: The registry already holds ``max_replicas`` workers.
    QUOTA = "quota"
    #: The child would be deeper than ``max_depth``.
    DEPTH_EXCEEDED = "depth_exceeded"
    #: A claimed depth differs from the depth derived from the registry.
    DEPTH_MISMATCH = "depth_mismatch"
    #: The parent registered a child less than ``cooldown_seconds`` ago.
    COOLDOWN = "cooldown"
    #: The named parent is not registered.
    PARENT_UNKNOWN = "parent_unknown"
    #: The named parent is quarantined and may not spawn.
    PARENT_QUARANTINED = "parent_quarantined"
    #: A stop condition of the contract fired (the event names which).
    STOP_CONDITION = "stop_condition"
    #: The manifest's signature is malformed or does not verify.
    BAD_SIGNATURE = "bad_signature"
    #: The worker id was registered before; a manifest is good for one registration.
    REPLAY = "replay"
    #: The manifest was issued later than now plus the contract's clock skew.
    ISSUED_IN_FUTURE = "issued_in_future"
    #: An explicitly requested worker id was already issued or registered.
    DUPLICATE_WORKER_ID = "duplicate_worker_id"
    #: The worker is not registered.
    UNKNOWN_WORKER = "unknown_worker"
    #: The worker is quarantined: it may not heartbeat, spawn or be launched.
    QUARANTINED = "quarantined"
    #: Quarantine was requested for a worker already in quarantine.
    ALREADY_QUARANTINED = "already_quarantined"
    #: Release was requested for a worker not in quarantine.
    NOT_QUARANTINED = "not_quarantined"
    #: A container for this worker id is already running.
    ALREADY_RUNNING = "already_running"
    #: No container for this worker id is running.
    NOT_RUNNING = "not_running"
    #: The manifest to launch is not the manifest the worker registered with.
    MANIFEST_MISMATCH = "manifest_mismatch"
    #: The worker outlived the contract's ``expiration_seconds`` (facade ``Worker`` only).
    EXPIRED = "expired"


class ReplicationDenied(ReplicationError):  # noqa: N818 - the seed's public name
    """A transition was refused by the policy; nothing changed.

    ``reason`` is the stable reason code, ``detail`` a sentence for humans and
    ``event`` the audit record of the refusal (``None`` only when raised by
    code outside the core, such as a user's own facade subclass).
    """

    reason: ReasonCode
    detail: str
    event: Event | None

    def __init__(
        self, reason: ReasonCode | str, detail: str = "", *, event: Event | None = None
    ) -> None:
        self.reason = ReasonCode(reason)
        self.detail = detail
        self.event = event
        super().__init__(f"{self.reason.value}: {detail}" if detail else self.reason.value)


class StopConditionTriggered(ReplicationDenied):
    """A stop condition of the contract fired at registration; ``condition`` is its name."""

    condition: str

    def __init__(self, condition: str, detail: str = "", *, event: Event | None = None) -> None:
        self.condition = condition
        super().__init__(ReasonCode.STOP_CONDITION, detail or condition, event=event)


class AuditError(ReplicationError):
    """The audit sink failed to record a decision; the decision itself stands.

    ``event`` is the first event the sink could not record and ``applied``
    whether the action changed the state (it did if it was allowed: a facade
    commits first and records second, so that a failing log can never undo a
    kill switch). ``denial`` is the :class:`ReplicationDenied` the caller would
    otherwise have received, and ``outcome`` what an allowed action returned
    (``outcome.manifest`` for an issue). The sink's own exception is the
    ``__cause__`` (specs/01-transitions.md, R-FACADE-3).
    """

    def __init__(
        self,
        event: Event,
        *,
        applied: bool,
        denial: ReplicationDenied | None = None,
        outcome: object = None,
    ) -> None:
        self.event = event
        self.applied = applied
        self.denial = denial
        self.outcome = outcome
        if denial is not None:
            decision = f"was denied ({denial})"
        elif applied:
            decision = "was allowed and applied"
        else:
            decision = "was allowed"
        super().__init__(f"{event.action} {decision}, but the audit sink failed to record it")


class ReentrancyError(ReplicationError):
    """A facade call was not applied: callbacks calling back into the controller prevented it.

    Only a callback running inside the call (a stop condition's predicate, the
    clock, a logger) can change the state under a facade call, which holds the
    controller's lock; the call is decided again over the new state, and after
    ``attempts`` tries it gives up and changes nothing (R-FACADE-2). It also
    gives up, before deciding, when calls nest too deeply inside callbacks, and
    without committing when a call made from one of its callbacks failed
    (``why`` then says which).
    """

    def __init__(self, action: str, attempts: int, *, why: str | None = None) -> None:
        self.action = action
        self.attempts = attempts
        self.why = why or (
            f"the state changed under it {attempts} times "
            "(a stop condition, clock or logger called back into the controller)"
        )
        super().__init__(f"{action} was not applied: {self.why}")


# What this module re-exports from the private modules that define it is shown
# under this public path (in tracebacks, reprs, pickles and the API reference),
# as it was before it moved there; httpx does the same for its private modules.
for _name in __all__:
    _value = globals()[_name]
    if getattr(_value, "__module__", "").startswith("replication._"):
        _value.__module__ = __name__
del _name, _value
