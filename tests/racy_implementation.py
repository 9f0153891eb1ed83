"""Implementations that are right one call at a time and wrong when calls overlap.

Each is the property suite's plain model with every call under one lock (so
each call is atomic and the sequential kit passes it), except for one action
that leaves its lock between a check and the act the check guards, with a
*window* in between where another thread's call can land:

* :class:`KillSwitchRace` kills a snapshot of its containers: a launch that
  lands between the snapshot and the flag leaves a container running after
  the kill switch;
* :class:`RegistrationRace` checks a registration against every rule, then
  inserts it in a second critical section: two registrations racing for the
  last slot of the quota both get it;
* :class:`LaunchRace` checks a launch against every rule, then starts the
  container outside the lock: a reap (or a kill switch) that removes the
  worker in between leaves its container running without it.

Their ``window`` sleeps a millisecond, so a concurrent run finds the race
often but not always. The ``Forced...`` variants make it certain, for tests
whose expected output must not depend on the scheduler: the window waits for
the racing call, which waits for the window (each wait bounded at 10 s, never
reached when both calls are in the scenario).
"""

from __future__ import annotations

import copy
import threading
import time
from typing import TYPE_CHECKING, Any

from properties.plain_model import PlainModel

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime, timedelta

    from replication.invariants import Observation
    from replication.model import Manifest, ReplicationContract, ResourceSpec
    from replication.signing import SigningKey

__all__ = [
    "ForcedKillSwitchRace",
    "ForcedLaunchRace",
    "ForcedRegistrationRace",
    "KillSwitchRace",
    "LaunchRace",
    "LockedPlainModel",
    "RegistrationRace",
]

#: How long a forced window waits for the call it expects, at most.
PATIENCE = 10.0


class LockedPlainModel(PlainModel):
    """The plain model with every call under one lock: linearizable."""

    def start(
        self, contract: ReplicationContract, key: SigningKey, clock: Callable[[], datetime]
    ) -> None:
        super().start(contract, key, clock)
        self.lock = threading.RLock()

    def _locked(self, method: Callable[..., Any], *args: Any) -> Any:
        with self.lock:
            return method(*args)

    def issue(
        self,
        parent_id: str | None,
        worker_id: str | None,
        resources: ResourceSpec,
        state_snapshot: dict[str, Any],
        depth: int | None = None,
    ) -> Manifest:
        issue = super().issue
        return self._locked(  # type: ignore[no-any-return]
            lambda: issue(parent_id, worker_id, resources, state_snapshot, depth)
        )

    def register(self, manifest: Manifest) -> None:
        self._locked(super().register, manifest)

    def launch(self, manifest: Manifest) -> None:
        self._locked(super().launch, manifest)

    def heartbeat(self, worker_id: str) -> None:
        self._locked(super().heartbeat, worker_id)

    def kill(self, worker_id: str) -> None:
        self._locked(super().kill, worker_id)

    def reap(self, timeout: timedelta) -> None:
        self._locked(super().reap, timeout)

    def kill_switch(self) -> None:
        self._locked(super().kill_switch)

    def quarantine(self, worker_id: str) -> None:
        self._locked(super().quarantine, worker_id)

    def release(self, worker_id: str) -> None:
        self._locked(super().release, worker_id)

    def observe(self) -> Observation:
        return self._locked(super().observe)  # type: ignore[no-any-return]


class KillSwitchRace(LockedPlainModel):
    """The kill switch kills a snapshot of the containers, then sets its flag."""

    def window(self) -> None:
        """Between the snapshot and the flag: another call may land here."""
        time.sleep(0.001)

    def kill_switch(self) -> None:
        with self.lock:
            doomed = list(self.containers)
        self.window()
        with self.lock:
            for worker_id in doomed:
                self.containers.pop(worker_id, None)
            self.registry.clear()
            self.quarantined.clear()
            self.spawn_times.clear()
            self.killed = True


class ForcedKillSwitchRace(KillSwitchRace):
    """The kill switch race, certain: every launch lands inside the kill switch's window.

    Use it in scenarios whose only launch overlaps the kill switch.
    """

    def start(
        self, contract: ReplicationContract, key: SigningKey, clock: Callable[[], datetime]
    ) -> None:
        super().start(contract, key, clock)
        self.opened = threading.Event()
        self.landed = threading.Event()

    def window(self) -> None:
        self.opened.set()
        self.landed.wait(PATIENCE)

    def launch(self, manifest: Manifest) -> None:
        self.opened.wait(PATIENCE)
        try:
            super().launch(manifest)
        finally:
            self.landed.set()


class RegistrationRace(LockedPlainModel):
    """A registration is checked in one critical section and inserted in another."""

    def window(self) -> None:
        """Between the checks and the insert: another registration may pass its checks here."""
        time.sleep(0.001)

    def register(self, manifest: Manifest) -> None:
        with self.lock:
            trial = copy.copy(self)
            trial.registry = dict(self.registry)
            trial.spawn_times = dict(self.spawn_times)
            trial.ever = set(self.ever)
        PlainModel.register(trial, manifest)  # every rule, against the state read above
        self.window()
        with self.lock:
            worker_id = manifest.worker_id
            self.registry[worker_id] = trial.registry[worker_id]
            self.ever.add(worker_id)
            if manifest.parent_id is not None:
                self.spawn_times[manifest.parent_id] = trial.spawn_times[manifest.parent_id]


class ForcedRegistrationRace(RegistrationRace):
    """The registration race, certain: registrations for the last free slot wait for each other."""

    def start(
        self, contract: ReplicationContract, key: SigningKey, clock: Callable[[], datetime]
    ) -> None:
        super().start(contract, key, clock)
        self.rendezvous = threading.Barrier(2, timeout=PATIENCE)

    def window(self) -> None:
        if len(self.registry) == self.contract.max_replicas - 1:
            self.rendezvous.wait()


class LaunchRace(LockedPlainModel):
    """A launch is checked in one critical section; its container starts after, unlocked."""

    def window(self) -> None:
        """Between the checks and the container: a reap may remove the worker here."""
        time.sleep(0.001)

    def launch(self, manifest: Manifest) -> None:
        with self.lock:
            trial = copy.copy(self)
            trial.containers = dict(self.containers)
            PlainModel.launch(trial, manifest)  # every rule, against the state read above
        self.window()
        # The container starts outside the lock, whatever happened meanwhile.
        self.containers[manifest.worker_id] = trial.containers[manifest.worker_id]


class ForcedLaunchRace(LaunchRace):
    """The launch race, certain: every reap lands inside a launch's window.

    Use it in scenarios whose only reap overlaps the only launch.
    """

    def start(
        self, contract: ReplicationContract, key: SigningKey, clock: Callable[[], datetime]
    ) -> None:
        super().start(contract, key, clock)
        self.opened = threading.Event()
        self.landed = threading.Event()

    def window(self) -> None:
        self.opened.set()
        self.landed.wait(PATIENCE)

    def reap(self, timeout: timedelta) -> None:
        self.opened.wait(PATIENCE)
        try:
            super().reap(timeout)
        finally:
            self.landed.set()
