"""A worker's cgroups: its memory, process-count and CPU limits, and what it uses.

One directory per controller under cgroup v1 (as on this project's machines),
one directory for all of them under v2. The limits come from the worker's
:class:`~replication.model.ResourceSpec` (memory, CPU) and the orchestrator's
process limit; the usage and the limit hits are read back from the kernel's
own counters, which is how :meth:`ProcessOrchestrator.enforce_resource_bounds
<replication.processes.orchestrator.ProcessOrchestrator.enforce_resource_bounds>`
knows a worker went over its bounds (R-PROC-7).

A worker's cgroups live under one directory per orchestrator, itself under
the orchestrator's own cgroup: workers stay inside whatever limits the
orchestrator itself runs under.
"""

from __future__ import annotations

import contextlib
import errno
import re
import time
from pathlib import Path
from typing import NamedTuple

__all__ = ["CgroupSet", "Limits", "Usage", "make_parent", "sanitize"]

#: The CFS period the CPU quota is expressed in (the kernel's default, 100 ms).
_CPU_PERIOD_US = 100_000
#: The smallest quota the kernel accepts.
_CPU_MIN_QUOTA_US = 1_000


class Limits(NamedTuple):
    """What a worker may use: bytes of memory, tasks (processes and threads), CPUs."""

    memory_bytes: int
    max_tasks: int
    cpus: float


class Usage(NamedTuple):
    """What a worker uses now, and how often it hit a limit, as the kernel counts them.

    ``None`` means the controller is not available (weaker isolation).
    """

    memory_bytes: int | None
    tasks: int | None
    oom_kills: int | None
    task_limit_hits: int | None


def sanitize(worker_id: str) -> str:
    """Return a file-name-safe form of a worker id (ids may hold ``/``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", worker_id)[:64]


def make_parent(bases: dict[str, str], name: str) -> dict[str, Path]:
    """Create the orchestrator's own directory under each controller's base."""
    parents = {}
    for controller, base in bases.items():
        parent = Path(base) / name
        parent.mkdir(exist_ok=True)
        parents[controller] = parent
    return parents


class CgroupSet:
    """The cgroup directories of one worker, across controllers."""

    def __init__(self, version: int, paths: dict[str, Path]) -> None:
        self.version = version
        self.paths = paths

    @classmethod
    def create(cls, version: int, parents: dict[str, Path], name: str) -> CgroupSet:
        """Create ``name`` under every parent; on failure remove what was made and raise."""
        made: dict[str, Path] = {}
        try:
            for controller, parent in parents.items():
                path = parent / name
                if path not in made.values():
                    path.mkdir()
                made[controller] = path
        except OSError:
            cls(version, made).remove()
            raise
        return cls(version, made)

    @property
    def directories(self) -> list[Path]:
        """Every distinct directory (one under v2)."""
        return sorted(set(self.paths.values()))

    @property
    def procs_files(self) -> list[Path]:
        """The ``cgroup.procs`` files a process joins by writing ``0`` to them."""
        return [directory / "cgroup.procs" for directory in self.directories]

    def apply(self, limits: Limits) -> None:
        """Write the limits (raises ``OSError`` if the kernel refuses one)."""
        memory = str(limits.memory_bytes)
        if self.version == 1:
            self._write("memory", "memory.limit_in_bytes", memory)
            # Without it the worker could swap its way past its memory limit.
            self._write("memory", "memory.memsw.limit_in_bytes", memory, optional=True)
            self._write("pids", "pids.max", str(limits.max_tasks))
            if "cpu" in self.paths:
                self._write("cpu", "cpu.cfs_period_us", str(_CPU_PERIOD_US))
                self._write("cpu", "cpu.cfs_quota_us", str(_quota(limits.cpus)))
        else:
            self._write("memory", "memory.max", memory)
            self._write("memory", "memory.swap.max", "0", optional=True)
            self._write("pids", "pids.max", str(limits.max_tasks))
            if "cpu" in self.paths:
                self._write("cpu", "cpu.max", f"{_quota(limits.cpus)} {_CPU_PERIOD_US}")

    def _write(self, controller: str, name: str, value: str, *, optional: bool = False) -> None:
        path = self.paths[controller] / name
        if optional and not path.exists():
            return
        path.write_text(value, encoding="ascii")

    def _read(self, controller: str, name: str) -> str | None:
        path = self.paths.get(controller)
        if path is None:
            return None
        try:
            return (path / name).read_text(encoding="ascii")
        except OSError:
            return None

    def usage(self) -> Usage:
        """Memory in use, tasks alive, OOM kills and refused forks, from the kernel's counters."""
        v1 = self.version == 1
        memory = self._read("memory", "memory.usage_in_bytes" if v1 else "memory.current")
        tasks = self._read("pids", "pids.current")
        oom = self._read("memory", "memory.oom_control" if v1 else "memory.events")
        forks = self._read("pids", "pids.events")
        return Usage(
            memory_bytes=None if memory is None else int(memory),
            tasks=None if tasks is None else int(tasks),
            oom_kills=_counter(oom, "oom_kill"),
            task_limit_hits=_counter(forks, "max"),
        )

    def pids(self) -> set[int]:
        """Every process in these cgroups now."""
        found: set[int] = set()
        for procs in self.procs_files:
            with contextlib.suppress(FileNotFoundError):
                found.update(int(pid) for pid in procs.read_text(encoding="ascii").split())
        return found

    def kill(self) -> bool:
        """Kill every process at once where the kernel can (v2 ``cgroup.kill``)."""
        if self.version != 2:
            return False
        for directory in self.directories:
            with contextlib.suppress(FileNotFoundError):
                (directory / "cgroup.kill").write_text("1", encoding="ascii")
        return True

    def remove(self, *, timeout: float = 2.0) -> None:
        """Remove the directories; a cgroup is busy for a moment after its last exit."""
        deadline = time.monotonic() + timeout
        for directory in self.directories:
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as error:
                    if error.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.005)


def _quota(cpus: float) -> int:
    return max(_CPU_MIN_QUOTA_US, round(cpus * _CPU_PERIOD_US))


def _counter(text: str | None, key: str) -> int | None:
    """Return the value of ``key`` in a flat-keyed cgroup file (``oom_kill 3``)."""
    if text is None:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0
