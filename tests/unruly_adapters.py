"""Adapters that misbehave instead of disagreeing, for testing the transition tour.

Each one is the plain model (a correct implementation) with one way of breaking
the adapter protocol rather than a rule: a crash, a hang, a wrong return type,
a ``start`` that fails, a process exit, an older protocol. The tour must report
each as a divergence of the implementation, with the path and the call, never
stop as though the command could not run.
"""

from __future__ import annotations

import os
import signal
import time
from typing import TYPE_CHECKING, Any

from properties.plain_model import PlainModel
from replication.conformance.adapters.adapter import Denied

if TYPE_CHECKING:
    from replication.invariants import Observation
    from replication.model import Manifest, ResourceSpec

__all__ = [
    "AbortsOnHeartbeat",
    "BeforeDeregister",
    "CrashesOnRegister",
    "CrashesUnprintably",
    "DeniesWhenObserved",
    "DeniesWithoutACode",
    "ExitsOnKill",
    "HangsInKill",
    "IssuesAString",
    "ObservesNothingLater",
    "PressesCtrlCOnRegister",
    "StartFailsLater",
]


class CrashesOnRegister(PlainModel):
    """``register`` raises ``KeyError``: a bug, not a denial."""

    def register(self, manifest: Manifest) -> None:
        raise KeyError("boom")


class InterruptsOnRegister(PlainModel):
    """``register`` raises ``KeyboardInterrupt`` itself: its crash, not the user's Ctrl-C."""

    def register(self, manifest: Manifest) -> None:
        raise KeyboardInterrupt


class PressesCtrlCOnRegister(PlainModel):
    """``register`` sends this process ``SIGINT``, as the user's Ctrl-C at that moment would."""

    def register(self, manifest: Manifest) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(600)  # Ctrl-C interrupts the sleep; never reached otherwise.
        super().register(manifest)


class CrashesUnprintably(PlainModel):
    """``register`` raises with a lone surrogate in its message, which no encoder can write."""

    def register(self, manifest: Manifest) -> None:
        raise RuntimeError("bad \ud800 byte")


class HangsInKill(PlainModel):
    """``kill`` never returns."""

    def kill(self, worker_id: str) -> None:
        time.sleep(3600)


class ExitsOnKill(PlainModel):
    """``kill`` calls ``sys.exit``: the implementation's crash, not the command's exit."""

    def kill(self, worker_id: str) -> None:
        raise SystemExit(0)


class Abort(BaseException):
    """Not an ``Exception``: what ``except Exception`` lets through."""


class AbortsOnHeartbeat(PlainModel):
    """``heartbeat`` raises a ``BaseException`` of its own."""

    def heartbeat(self, worker_id: str) -> None:
        raise Abort(worker_id)


class DeniesWhenObserved(PlainModel):
    """``observe`` raises ``Denied`` once a worker is registered: only actions may refuse."""

    def observe(self) -> Observation:
        observed: Observation = super().observe()
        if observed.workers:
            raise Denied("quota")
        return observed


class IssuesAString(PlainModel):
    """``issue`` returns a string where the protocol says the signed ``Manifest``."""

    def issue(
        self,
        parent_id: str | None,
        worker_id: str | None,
        resources: ResourceSpec,
        state_snapshot: dict[str, Any],
    ) -> Any:
        super().issue(parent_id, worker_id, resources, state_snapshot)
        return "a manifest, honestly"


class ObservesNothingLater(PlainModel):
    """``observe`` returns ``None`` once a worker is registered."""

    def observe(self) -> Any:
        observed: Observation = super().observe()
        return observed if not observed.workers else None


class StartFailsLater(PlainModel):
    """``start`` works once on each object (the preflight's probe, the first path), then raises."""

    def start(self, *arguments: Any) -> None:
        if getattr(self, "started", False):
            raise RuntimeError("start failed")
        self.started = True
        super().start(*arguments)


class DeniesWithoutACode(PlainModel):
    """A refused ``register`` raises ``Denied`` with a number where a reason code belongs."""

    def register(self, manifest: Manifest) -> None:
        try:
            super().register(manifest)
        except Denied:
            raise Denied(42) from None  # type: ignore[arg-type]


class BeforeDeregister(PlainModel):
    """An adapter written before ``deregister`` and ``expire`` joined the protocol."""

    deregister = None
    expire = None
