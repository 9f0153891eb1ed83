"""An implementation shared by processes: the plain model's state in one SQLite database.

For the concurrent mode's client processes. The kit starts the system in its
own process (``start``); each client process attaches to it by the database's
path (``connection`` and ``attach``). Every call is one transaction that takes
the write lock first (``BEGIN IMMEDIATE``), loads the model, applies the call
and stores the model: atomic across processes, so linearizable.

:class:`SharedKillSwitchRace` splits the kill switch into two transactions
(the snapshot of the containers, then the kill and the flag), with a window
between them; :class:`ForcedSharedKillSwitchRace` makes the race certain, the
window and the launch waiting for each other through the database.
"""

from __future__ import annotations

import pickle
import shutil
import sqlite3
import tempfile
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from properties.plain_model import PlainModel
from replication.signing import SigningKey

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime, timedelta

    from replication.invariants import Observation
    from replication.model import Manifest, ReplicationContract, ResourceSpec

__all__ = ["ForcedSharedKillSwitchRace", "SharedKillSwitchRace", "SharedPlainModel"]

#: How long a forced window waits for the call it expects, at most.
PATIENCE = 10.0


class SharedPlainModel:
    """The plain model in a database file, shared by every process that attaches to it."""

    gaps: frozenset[str] = frozenset()

    def start(
        self, contract: ReplicationContract, key: SigningKey, clock: Callable[[], datetime]
    ) -> None:
        directory = tempfile.mkdtemp(prefix="replication-shared-")
        weakref.finalize(self, shutil.rmtree, directory, ignore_errors=True)
        self.path = Path(directory) / "system.db"
        model = PlainModel()
        model.start(contract, key, clock)
        with sqlite3.connect(self.path) as database:
            database.execute("CREATE TABLE system (key BLOB, state BLOB)")
            database.execute("CREATE TABLE signals (name TEXT PRIMARY KEY)")
            database.execute("INSERT INTO system VALUES (?, ?)", (key.to_pem(), _dump(model)))
        database.close()
        self.attach(str(self.path), clock)

    def connection(self) -> str:
        """The path of the database: what a client process needs to join the system."""
        return str(self.path)

    def attach(self, connection: str, clock: Callable[[], datetime]) -> None:
        """Join the system in the database at ``connection``."""
        self.path = Path(connection)
        self.clock = clock
        self.database = sqlite3.connect(self.path, timeout=PATIENCE, isolation_level=None)
        # The protocol has no stop(): closed with the adapter (an unclosed connection
        # is a ResourceWarning on Python 3.13, an error under the suite's filters).
        weakref.finalize(self, self.database.close)
        self.database.execute("PRAGMA synchronous=OFF")
        (pem,) = self.database.execute("SELECT key FROM system").fetchone()
        self.key = SigningKey.from_pem(pem)

    def _transaction(self, action: Callable[[PlainModel], Any]) -> Any:
        self.database.execute("BEGIN IMMEDIATE")
        try:
            (state,) = self.database.execute("SELECT state FROM system").fetchone()
            model = PlainModel.__new__(PlainModel)
            model.__dict__.update(pickle.loads(state), key=self.key, clock=self.clock)  # noqa: S301 - our own file
            result = action(model)
            self.database.execute("UPDATE system SET state = ?", (_dump(model),))
        except BaseException:
            self.database.execute("ROLLBACK")
            raise
        self.database.execute("COMMIT")
        return result

    def signal(self, name: str) -> None:
        """Raise the named flag, for every process to see."""
        self.database.execute("INSERT OR IGNORE INTO signals VALUES (?)", (name,))

    def wait_for(self, name: str) -> None:
        """Wait (at most :data:`PATIENCE` seconds) until the named flag is raised."""
        deadline = time.monotonic() + PATIENCE
        query = "SELECT 1 FROM signals WHERE name = ?"
        while self.database.execute(query, (name,)).fetchone() is None:
            if time.monotonic() > deadline:
                return
            time.sleep(0.001)

    def issue(
        self,
        parent_id: str | None,
        worker_id: str,
        resources: ResourceSpec,
        state_snapshot: dict[str, Any],
    ) -> Manifest:
        return self._transaction(  # type: ignore[no-any-return]
            lambda m: m.issue(parent_id, worker_id, resources, state_snapshot)
        )

    def register(self, manifest: Manifest) -> None:
        self._transaction(lambda m: m.register(manifest))

    def launch(self, manifest: Manifest) -> None:
        self._transaction(lambda m: m.launch(manifest))

    def heartbeat(self, worker_id: str) -> None:
        self._transaction(lambda m: m.heartbeat(worker_id))

    def kill(self, worker_id: str) -> None:
        self._transaction(lambda m: m.kill(worker_id))

    def reap(self, timeout: timedelta) -> None:
        self._transaction(lambda m: m.reap(timeout))

    def kill_switch(self) -> None:
        self._transaction(lambda m: m.kill_switch())

    def quarantine(self, worker_id: str) -> None:
        self._transaction(lambda m: m.quarantine(worker_id))

    def release(self, worker_id: str) -> None:
        self._transaction(lambda m: m.release(worker_id))

    def observe(self) -> Observation:
        return self._transaction(lambda m: m.observe())  # type: ignore[no-any-return]


def _dump(model: PlainModel) -> bytes:
    return pickle.dumps({k: v for k, v in vars(model).items() if k not in {"key", "clock"}})


class SharedKillSwitchRace(SharedPlainModel):
    """The kill switch snapshots the containers in one transaction, kills them in another."""

    def window(self) -> None:
        """Between the two transactions: another process's launch may land here."""
        time.sleep(0.001)

    def kill_switch(self) -> None:
        doomed = self._transaction(lambda m: list(m.containers))
        self.window()

        def finish(model: PlainModel) -> None:
            for worker_id in doomed:
                model.containers.pop(worker_id, None)
            model.registry.clear()
            model.quarantined.clear()
            model.spawn_times.clear()
            model.killed = True

        self._transaction(finish)


class ForcedSharedKillSwitchRace(SharedKillSwitchRace):
    """The race, certain: every launch waits for the kill switch's window, which waits for it.

    Use it in scenarios whose only launch overlaps the kill switch.
    """

    def window(self) -> None:
        self.signal("window open")
        self.wait_for("launched")

    def launch(self, manifest: Manifest) -> None:
        self.wait_for("window open")
        try:
            super().launch(manifest)
        finally:
            self.signal("launched")
