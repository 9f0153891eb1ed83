"""The bounded configuration an exploration covers, and its named sizes.

A :class:`Bound` fixes everything that makes the reachable state space finite
and the exploration repeatable: the contract (in whole clock ticks), the reap
timeout, how many manifests may be issued in all, the fixed key and the
deterministic worker ids ``w1``, ``w2``, ... in issue order. Time is a clock
advanced one tick at a time; with the time abstraction (specs/06-exploration.md,
R-EXPLORE-3) the space is finite without a horizon, without it ``max_ticks``
bounds the clock.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import attrs

from replication.conformance.fixtures import NO_EXTERNAL_NETWORK
from replication.errors import ReasonCode
from replication.model import ReplicationContract

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["BOUNDS", "DEFAULT", "EPOCH", "FACADE_ONLY_CODES", "MAX_TICKS", "TICK", "Bound"]

#: One clock tick. Contract durations are whole numbers of ticks.
TICK: Final = timedelta(seconds=1)
#: The clock at the start of every exploration.
EPOCH: Final = datetime(2026, 1, 1, tzinfo=UTC)
#: The longest duration a bound may name, in ticks (about 11.6 days): far beyond what can be
#: explored, and far within what the clock can hold.
MAX_TICKS: Final = 1_000_000
#: Reason codes no core transition produces (only the facade's ``Worker`` does).
FACADE_ONLY_CODES: Final = frozenset({ReasonCode.EXPIRED})


def _positive(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 1:
        message = f"{attribute.name} must be an int >= 1, got {value!r}"
        raise ValueError(message)


def _natural(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 0:
        message = f"{attribute.name} must be an int >= 0, got {value!r}"
        raise ValueError(message)


def _ticks(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or not 0 <= value <= MAX_TICKS:
        message = f"{attribute.name} must be an int from 0 to {MAX_TICKS}, got {value!r}"
        raise ValueError(message)


def _optional_ticks(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and (type(value) is not int or not 1 <= value <= MAX_TICKS):
        message = f"{attribute.name} must be None or an int from 1 to {MAX_TICKS}, got {value!r}"
        raise ValueError(message)


@attrs.frozen
class Bound:
    """A small contract and the limits that make its state space finite.

    Durations are in ticks. ``max_issued`` bounds the manifests issued in all
    (honest issues; hostile requests that are refused do not count).
    ``max_ticks``, when set, stops the clock at ``EPOCH + max_ticks`` ticks; it is
    required when exploring without the time abstraction.
    """

    max_depth: int = attrs.field(default=2, validator=_natural)
    max_replicas: int = attrs.field(default=3, validator=_positive)
    cooldown: int = attrs.field(default=2, validator=_ticks)
    heartbeat_timeout: int = attrs.field(default=2, validator=_ticks)
    expiration: int | None = attrs.field(default=4, validator=_optional_ticks)
    clock_skew: int = attrs.field(default=1, validator=_ticks)
    stop_on_external_network: bool = True
    max_issued: int = attrs.field(default=4, validator=_natural)
    max_ticks: int | None = attrs.field(default=None, validator=_optional_ticks)

    @property
    def contract(self) -> ReplicationContract:
        """The contract every exploration of this bound runs under."""
        return _contract(self)

    @property
    def timeout(self) -> timedelta:
        """The heartbeat timeout every reap uses."""
        return self.heartbeat_timeout * TICK

    def reachable_codes(self) -> frozenset[ReasonCode]:
        """Return the denial reason codes this bound allows the explorer to reach.

        Every code the core produces (not ``expired``, which only the facade's
        ``Worker`` does), less those whose preconditions the bound rules out
        (issues are tried at the bound too, so a refused issue needs no room):
        a stop condition needs one in the contract; a full registry needs
        ``max_replicas`` manifests; a refused deeper child needs a chain of
        ``max_depth + 1`` registered workers; a refused second child (cooldown)
        needs a parent and a first child, and a cooldown of a tick or more; a
        quarantined parent needs room for its child; everything about a worker
        needs one worker.
        """
        codes = set(ReasonCode) - FACADE_ONLY_CODES
        workers = min(self.max_replicas, self.max_issued)
        if not self.stop_on_external_network:
            codes.discard(ReasonCode.STOP_CONDITION)
        if self.max_replicas > self.max_issued:
            codes.discard(ReasonCode.QUOTA)
        if self.max_depth + 1 > workers:
            codes.discard(ReasonCode.DEPTH_EXCEEDED)
        if self.max_depth < 1 or workers < 2 or self.cooldown < 1:
            codes.discard(ReasonCode.COOLDOWN)
        if self.max_replicas < 2:
            codes.discard(ReasonCode.PARENT_QUARANTINED)
        if workers < 1:
            codes -= _NEED_A_WORKER
        return frozenset(codes)

    def describe(self) -> str:
        """Return the bound as one line, for reports."""
        expiration = "none" if self.expiration is None else f"{self.expiration}"
        ticks = "" if self.max_ticks is None else f", clock <= {self.max_ticks} ticks"
        return (
            f"max_depth {self.max_depth}, max_replicas {self.max_replicas}, "
            f"cooldown {self.cooldown}, heartbeat timeout {self.heartbeat_timeout}, "
            f"expiration {expiration}, clock skew {self.clock_skew} (ticks of 1 s), "
            f"stop condition {'no_external_network' if self.stop_on_external_network else 'none'}, "
            f"at most {self.max_issued} manifests issued{ticks}"
        )


@functools.lru_cache(maxsize=32)
def _contract(bound: Bound) -> ReplicationContract:
    """Build a bound's contract once: a tour asks for it at every step, and it is immutable."""
    seconds = TICK.total_seconds()
    return ReplicationContract(
        max_depth=bound.max_depth,
        max_replicas=bound.max_replicas,
        cooldown_seconds=bound.cooldown * seconds,
        stop_conditions=[NO_EXTERNAL_NETWORK] if bound.stop_on_external_network else [],
        expiration_seconds=None if bound.expiration is None else bound.expiration * seconds,
        clock_skew_seconds=bound.clock_skew * seconds,
    )


# Codes that need a worker registered (or at least issued).
_NEED_A_WORKER = frozenset(ReasonCode) - {
    ReasonCode.KILL_SWITCH,
    ReasonCode.PARENT_UNKNOWN,
    ReasonCode.DEPTH_MISMATCH,
    ReasonCode.ISSUED_IN_FUTURE,
}

#: The default bound: every reason code the core can produce is reachable in it.
DEFAULT: Final = Bound(
    max_depth=2,
    max_replicas=3,
    cooldown=2,
    heartbeat_timeout=2,
    expiration=None,
    max_issued=3,
)

#: The named bounds ``replication explore --bound NAME`` accepts.
BOUNDS: Final[Mapping[str, Bound]] = {
    "tiny": Bound(
        max_depth=1,
        max_replicas=2,
        cooldown=1,
        heartbeat_timeout=1,
        expiration=2,
        max_issued=2,
    ),
    "small": Bound(max_depth=1, max_replicas=2, max_issued=3, expiration=3),
    # The tour's bound holds the boundary instant of every time rule, each with
    # both of its sides: a sibling at a cooldown age of 1 and 2 ticks, a reap at
    # a heartbeat age of 0 (the timeout) and 1, an expiry at a registration age
    # of 1 (the expiration) and 2, a registration issued at the clock (a skew of
    # 0) and one tick ahead. A registration that meets a full registry needs a
    # third manifest: the tour drives it on a graph of its own
    # (replication.explore.tour.FULL_REGISTRY), not on this one.
    "tour": Bound(
        max_depth=1,
        max_replicas=2,
        cooldown=2,
        heartbeat_timeout=0,
        expiration=1,
        clock_skew=0,
        max_issued=2,
    ),
    "default": DEFAULT,
}
