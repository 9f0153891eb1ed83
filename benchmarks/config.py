"""What a benchmark run measures: the sizes, the repetitions, the batches, the machines.

Its own module, below ``bench.py`` (the entry point) and ``workloads.py`` (the
measured operations), which both read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Config"]


@dataclass(frozen=True)
class Config:
    """What to run; ``Config.quick()`` is the few-seconds variant the smoke test uses."""

    sizes: tuple[int, ...] = (100, 1_000, 10_000, 100_000)
    reps: int = 7
    #: issue+register+launch cycles per timed batch.
    create_batch: int = 40
    #: heartbeats / kills per timed batch.
    op_batch: int = 4000
    #: Ed25519 sign+verify pairs per timed batch.
    crypto_batch: int = 100
    #: Repetitions of the whole-fleet operations (reap, kill switch).
    fleet_reps: int = 7
    gc_off: bool = True
    memory: bool = True
    #: "module:Class" state machines to time; None discovers them under properties/.
    machines: tuple[str, ...] | None = None
    machine_steps: int = 3000
    machine_step_count: int = 50
    seed: int = 20260101

    @classmethod
    def quick(cls, sizes: Sequence[int] = (20, 100), **overrides: Any) -> Config:
        values: dict[str, Any] = {
            "sizes": tuple(sizes),
            "reps": 3,
            "create_batch": 5,
            "op_batch": 200,
            "crypto_batch": 10,
            "fleet_reps": 3,
            "machine_steps": 100,
            "machine_step_count": 20,
        }
        values.update(overrides)
        return cls(**values)
