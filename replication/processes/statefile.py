"""The state file: what an orchestrator launched, so that its successor can kill it.

With full isolation a worker dies with the orchestrator process that launched
it (bubblewrap's parent-death signal), and a successor sweeps the cgroups of a
dead orchestrator without any file (R-PROC-15); with weaker isolation nothing
ties their lives, and the state file is what a successor has. An
orchestrator given a ``state_file`` writes, before
each launch and after each kill, every sandbox it holds: the supervisor's and
the init's pids with their start times (a pid alone may be reused), the
marker, the PID namespace, the cgroup directories. A new orchestrator given
the same file kills everything recorded there before it does anything else,
and confirms it (R-PROC-8): it never adopts those workers, because its own
controller never registered them (R-FACADE-4).

The file is replaced atomically (``os.replace``) and not fsynced: it must
survive the orchestrator's crash, not the machine's (workers do not survive
a power loss either).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import psutil

from replication.errors import InvalidValueError
from replication.processes.cgroups import CgroupSet
from replication.processes.errors import KillUnconfirmed
from replication.processes.sandbox import MARKER

__all__ = ["FORMAT", "Record", "StateFile", "recover"]

#: The format marker written into every state file.
FORMAT = "replication-process-state/1"

#: One sandbox, as written: plain JSON.
Record = dict[str, Any]


def process_identity(pid: int | None) -> list[float] | None:
    """``[pid, start time]``: names one process for as long as the machine runs."""
    if pid is None:
        return None
    try:
        return [pid, psutil.Process(pid).create_time()]
    except psutil.Error:
        return None


class StateFile:
    """Where one orchestrator records its sandboxes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, Record]:
        """Return the recorded sandboxes by worker id (none when there is no file)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InvalidValueError("state_file", f"a {FORMAT} file", str(self.path))
        workers = data.get("workers", {})
        if not isinstance(workers, dict):
            raise InvalidValueError("state_file", "'workers' as an object", str(self.path))
        return workers

    def write(self, records: dict[str, Record]) -> None:
        """Replace the file with ``records``, atomically."""
        partial = self.path.with_name(self.path.name + ".partial")
        partial.write_text(
            json.dumps({"format": FORMAT, "workers": records}, sort_keys=True), encoding="utf-8"
        )
        partial.replace(self.path)


def recover(records: dict[str, Record], *, timeout: float = 10.0) -> dict[str, int]:
    """Kill every process of the recorded sandboxes; return how many died, by worker id.

    A recorded pid is signalled only if its start time still matches (it is
    the same process); then every process carrying a recorded marker or sitting
    in a recorded cgroup is swept until none is left, and the cgroups removed.
    Raises :class:`KillUnconfirmed` naming the survivors if some outlive ``timeout``.
    """
    killed: dict[str, int] = dict.fromkeys(records, 0)
    for worker_id, record in records.items():
        for key in ("init", "supervisor"):
            identity = record.get(key)
            if identity and _same_process(identity):
                with contextlib.suppress(psutil.Error):
                    psutil.Process(int(identity[0])).send_signal(signal.SIGKILL)
                    killed[worker_id] += 1
    markers = {record["marker"]: worker_id for worker_id, record in records.items()}
    groups = {
        worker_id: CgroupSet(1, {str(i): Path(p) for i, p in enumerate(record.get("cgroups", []))})
        for worker_id, record in records.items()
    }
    deadline = time.monotonic() + timeout
    while True:
        found = _sweep(markers, groups)
        if not found:
            break
        if time.monotonic() > deadline:
            raise KillUnconfirmed({worker_id: tuple(pids) for worker_id, pids in found.items()})
        for worker_id, pids in found.items():
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()
                    killed[worker_id] += 1
        time.sleep(0.005)
    for group in groups.values():
        with contextlib.suppress(OSError):
            group.remove()
        for directory in group.directories:  # the dead orchestrator's own, once empty
            with contextlib.suppress(OSError):
                directory.parent.rmdir()
    return killed


def _same_process(identity: list[float]) -> bool:
    pid, started = int(identity[0]), float(identity[1])
    try:
        return abs(psutil.Process(pid).create_time() - started) < 0.01
    except psutil.Error:
        return False


def _sweep(markers: dict[str, str], groups: dict[str, CgroupSet]) -> dict[str, list[int]]:
    """Return the live processes of recorded sandboxes, by cgroup membership or marker."""
    found: dict[str, list[int]] = {}
    member = {pid: worker_id for worker_id, group in groups.items() for pid in group.pids()}
    for process in psutil.process_iter(["pid", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        owner = member.get(process.pid)
        if owner is None:
            try:
                owner = markers.get(process.environ().get(MARKER, ""))
            except (psutil.Error, OSError):
                continue
        if owner is not None and process.pid != os.getpid():
            found.setdefault(owner, []).append(process.pid)
    return found
