"""What a conformance run produces: its failure, its statistics, its comparisons.

The comparison of two observations, the failure a divergence raises, the
statistics of a run, and the record of a manifest issued on both sides.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from replication.conformance.witnesses import WitnessLog

if TYPE_CHECKING:
    from replication.invariants import Observation
    from replication.model import Manifest

__all__ = ["ConformanceFailure", "Issued", "RunStats", "compare_observations"]


def compare_observations(expected: Observation, got: Observation) -> list[str]:
    """Return the differences between the reference's observation and an implementation's.

    Optional data the implementation does not report (``None``) is not compared.
    """
    differences = []
    if expected.kill_switch_engaged != got.kill_switch_engaged:
        differences.append(
            f"kill switch engaged: expected {expected.kill_switch_engaged}, "
            f"got {got.kill_switch_engaged}"
        )
    if set(expected.workers) != set(got.workers):
        differences.append(
            f"registered workers: expected {sorted(expected.workers)}, got {sorted(got.workers)}"
        )
    if expected.containers != got.containers:
        differences.append(
            f"running containers: expected {sorted(expected.containers)}, "
            f"got {sorted(got.containers)}"
        )
    for name in ("quarantined", "registered_ever"):
        reported = getattr(got, name)
        if reported is not None and reported != getattr(expected, name):
            differences.append(
                f"{name}: expected {sorted(getattr(expected, name))}, got {sorted(reported)}"
            )
    for worker_id in sorted(set(expected.workers) & set(got.workers)):
        want, have = expected.workers[worker_id], got.workers[worker_id]
        for field in attrs.fields(type(want)):
            reported = getattr(have, field.name)
            if reported is not None and reported != getattr(want, field.name):
                differences.append(
                    f"{worker_id}.{field.name}: expected {getattr(want, field.name)!r}, "
                    f"got {reported!r}"
                )
    return differences


@attrs.frozen
class Issued:
    """A manifest issued by both sides for the same worker id."""

    worker_id: str
    reference: Manifest
    implementation: Manifest | None

    def __repr__(self) -> str:
        return f"Issued({self.worker_id!r})"


class ConformanceFailure(AssertionError):  # noqa: N818 - it reports a failed check
    """The implementation diverged from the reference, or broke an invariant.

    ``kind`` is ``decision``, ``reason``, ``observation``, ``invariant`` or
    ``reference`` (the reference itself broke an invariant: a bug of ours).
    """

    def __init__(self, kind: str, action: str, expected: str, got: str, details: list[str]) -> None:
        self.kind = kind
        self.action = action
        self.expected = expected
        self.got = got
        self.details = details
        super().__init__(self.render())

    def render(self) -> str:
        """Return the failure as the report prints it: expected and got, side by side."""
        width = max(len("expected"), len(self.expected))
        lines = [
            f"{self.kind} divergence at {self.action}",
            f"  {'expected':<{width}}  | got",
            f"  {self.expected:<{width}}  | {self.got}",
        ]
        lines += [f"  - {detail}" for detail in self.details]
        return "\n".join(lines)


@attrs.define
class RunStats:
    """What a run did: examples and steps, skipped rules, witnesses, invariant failures."""

    examples: int = 0
    steps: int = 0
    implementation_steps: int = 0
    witnesses: WitnessLog = attrs.field(factory=WitnessLog)
    violated: set[str] = attrs.field(factory=set)
    skipped_rules: tuple[str, ...] = ()
    #: The optional observation data the implementation reported at least once.
    reported: set[str] = attrs.field(factory=set)

    def note_reported(self, observation: Observation) -> None:
        """Remember which optional data an observation carries."""
        for name in ("quarantined", "registered_ever", "live_processes"):
            if getattr(observation, name) is not None:
                self.reported.add(name)
        for worker in observation.workers.values():
            for name in ("registered_at", "last_heartbeat", "last_child_registered_at", "manifest"):
                if getattr(worker, name) is not None:
                    self.reported.add(name)
