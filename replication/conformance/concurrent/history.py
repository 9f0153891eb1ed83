"""A concurrent history: every call with its invocation, its response and their real-time order.

The concurrent driver (:mod:`replication.conformance.concurrent.runner`) records one
:class:`Call` per call it makes on the implementation: which client made it,
what it asked, the clock value of its round, the ``time.monotonic_ns()`` just
before the call and just after it returned, and what came back (allowed,
denied with a reason, an observation, or a crash). The timestamps are taken
outside the call, so a call whose ``returned`` is smaller than another's
``invoked`` really did finish before the other began; calls whose intervals
overlap, or touch, are concurrent. ``CLOCK_MONOTONIC`` is one clock for every
process of a host, so histories recorded by client processes compare too.

:meth:`History.events` gives the canonical order of invocations and returns,
in which runs of invocations (or of returns) with nothing of the other kind
between them are sorted by client: they are unordered in real time, and the
canonical order makes the printed timeline of a history independent of how
the scheduler happened to interleave them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from replication.model import NetworkPolicy, ResourceSpec

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from replication.invariants import Observation
    from replication.model import Manifest, ReplicationContract

__all__ = ["ALLOWED", "CRASHED", "DENIED", "OBSERVED", "Call", "History", "resources"]

ALLOWED = "allowed"
DENIED = "denied"
OBSERVED = "observed"
CRASHED = "crashed"

_RESOURCES = {
    external: ResourceSpec(0.5, 256, NetworkPolicy(allow_external=external))
    for external in (False, True)
}


def resources(*, external: bool) -> ResourceSpec:
    """Return the resources every issue of the concurrent mode asks for (egress or not)."""
    return _RESOURCES[external]


@attrs.frozen
class Call:
    """One call on the implementation, as recorded.

    ``action`` is the adapter method (``issue``, ``register``, ``launch``,
    ``heartbeat``, ``kill``, ``reap``, ``kill_switch``, ``quarantine``,
    ``release`` or ``observe``). ``manifest`` is what the reference model
    registers or launches for this call (the manifest the reference would have
    issued, while the implementation is sent its own). ``returned`` is
    ``None`` for a call still pending when the history was cut (the minimiser
    cuts histories; the driver's are complete).
    """

    client: str
    round: int
    action: str
    now: datetime
    invoked: int
    returned: int | None
    outcome: str | None
    reason: str | None = None
    worker_id: str | None = None
    parent_id: str | None = None
    external: bool = False
    manifest: Manifest | None = attrs.field(default=None, repr=False)
    timeout: timedelta | None = None
    observation: Observation | None = attrs.field(default=None, repr=False)

    @property
    def pending(self) -> bool:
        """Whether the call has no response in this history."""
        return self.returned is None

    def precedes(self, other: Call) -> bool:
        """Whether this call returned before ``other`` was invoked (real-time order)."""
        return self.returned is not None and self.returned < other.invoked

    def cut(self) -> Call:
        """Return this call without its response: pending."""
        return attrs.evolve(self, returned=None, outcome=None, reason=None, observation=None)

    @property
    def label(self) -> str:
        """The call and its response in a few words: ``launch k1: ok``."""
        return f"{self.request}: {self.response}"

    @property
    def request(self) -> str:
        """What was asked: ``issue k2 <- k1`` (a child of k1), ``launch k1``, ``kill_switch``."""
        if self.action in {"issue", "register"} and self.parent_id is not None:
            return f"{self.action} {self.worker_id} <- {self.parent_id}"
        if self.worker_id is not None:
            return f"{self.action} {self.worker_id}"
        return self.action

    @property
    def response(self) -> str:
        """What came back: ``ok``, ``denied quota``, ``seen``, ``crashed``, ``?`` (pending)."""
        if self.outcome is None:
            return "?"
        if self.outcome == ALLOWED:
            return "ok"
        if self.outcome == DENIED:
            return f"denied {self.reason or '(no reason)'}"
        if self.outcome == OBSERVED:
            return "seen"
        return f"crashed ({self.reason})"


@attrs.frozen
class History:
    """The calls of one concurrent run on one fresh system, under one contract."""

    contract: ReplicationContract
    reap_timeout: timedelta
    calls: tuple[Call, ...]

    def events(self) -> list[tuple[int, bool]]:
        """Return the canonical order of the history's events as ``(call index, is_return)``.

        Events are ordered by time, an invocation before a return at the same
        time (touching calls are concurrent); within a run of events of one
        kind, by client, then by call.
        """
        stamped = [(call.invoked, 0, index) for index, call in enumerate(self.calls)]
        stamped += [
            (call.returned, 1, index)
            for index, call in enumerate(self.calls)
            if call.returned is not None
        ]
        stamped.sort()
        ordered: list[tuple[int, bool]] = []
        start = 0
        while start < len(stamped):
            kind = stamped[start][1]
            end = start
            while end < len(stamped) and stamped[end][1] == kind:
                end += 1
            run = sorted(stamped[start:end], key=lambda e: (self.calls[e[2]].client, e[2]))
            ordered += [(index, bool(kind)) for _, _, index in run]
            start = end
        return ordered

    def with_calls(self, calls: tuple[Call, ...]) -> History:
        """Return the same history with other calls (a part, a cut, a reduction)."""
        return attrs.evolve(self, calls=calls)

    def overlapping(self) -> list[tuple[Call, Call]]:
        """Return every pair of calls from different clients whose intervals overlap."""
        calls = sorted(self.calls, key=lambda call: call.invoked)
        pairs = []
        for position, first in enumerate(calls):
            for second in calls[position + 1 :]:
                if first.precedes(second):
                    break  # so does every later call: none of them overlaps ``first``
                if second.client != first.client:
                    pairs.append((first, second))
        return pairs
