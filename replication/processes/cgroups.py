"""A worker's cgroups: its memory, process-count and CPU limits, and what it uses.

One directory per controller under cgroup v1 (as on this project's machines),
one directory for all of them under v2. The directories are created and
written by the orchestrator (root) and stay out of the worker's reach: it runs
as another, unprivileged host uid, and its mount namespace has no ``/sys``
(R-PROC-13). The freezer (v1 controller, v2 ``cgroup.freeze``) holds every
task still while the kill lands (R-PROC-16). The limits come from the worker's
:class:`~replication.model.ResourceSpec` (memory, CPU) and the orchestrator's
process limit; the usage and the limit hits are read back from the kernel's
own counters, which is how :meth:`ProcessOrchestrator.enforce_resource_bounds
<replication.processes.orchestrator.ProcessOrchestrator.enforce_resource_bounds>`
knows a worker went over its bounds (R-PROC-7).

A worker's cgroups live under one directory per orchestrator, itself under
the orchestrator's own cgroup: workers stay inside whatever limits the
orchestrator itself runs under. That directory's name says whose it is
(:data:`PREFIX`, the orchestrator's pid and start time): a later orchestrator
finds those whose owner is dead and kills what is left in them
(:func:`sweep_orphans`, R-PROC-15).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "PREFIX",
    "CgroupSet",
    "Limits",
    "Usage",
    "make_parent",
    "owner_name",
    "sanitize",
    "sweep_orphans",
]

#: The start of every orchestrator's cgroup directory: ``replication-sbx-<pid>-<start>-<token>``.
PREFIX = "replication-sbx-"
_OWNED = re.compile(rf"^{PREFIX}(\d+)-(\d+)-[0-9a-f]+$")

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


def start_ticks(pid: int) -> int | None:
    """Return a process's start time in clock ticks since boot (``/proc/PID/stat`` field 22)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    return int(stat.rsplit(")", 1)[1].split()[19])


def owner_name(token: str) -> str:
    """Return the name of this orchestrator's cgroup directory: whose it is, for a successor."""
    pid = os.getpid()
    return f"{PREFIX}{pid}-{start_ticks(pid)}-{token}"


def _owner_alive(name: str) -> bool:
    found = _OWNED.match(name)
    if found is None:
        return True  # not ours to judge
    pid, started = int(found.group(1)), int(found.group(2))
    return start_ticks(pid) == started


def sweep_orphans(roots: dict[str, str], *, version: int, timeout: float = 10.0) -> dict[str, int]:
    """Kill what is left in cgroups of orchestrators that died; return kills by directory.

    Walks every controller's hierarchy from ``roots`` (controller -> mount
    point) for directories named by :func:`owner_name` whose owner (pid and
    start time) is no longer alive, freezes them, SIGKILLs every task, thaws
    them, and removes them once empty. Raises ``OSError`` if some task
    outlives ``timeout``.
    """
    orphans: list[Path] = []
    paths: dict[tuple[str, str], dict[str, Path]] = {}
    for controller, root in roots.items():
        for parent in _find_owned(Path(root)):
            orphans.append(parent)
            # Another sweeper (the dead orchestrator's watchdog, or another successor) may
            # be removing it now: what is gone has nothing left to kill.
            with _unless_gone():
                for child in parent.iterdir():
                    if child.is_dir():
                        paths.setdefault((parent.name, child.name), {})[controller] = child
    killed: dict[str, int] = {}
    workers = [CgroupSet(version, found) for found in paths.values()]
    deadline = time.monotonic() + timeout
    while True:
        alive = [w for w in workers if w.pids()]
        if not alive:
            break
        if time.monotonic() > deadline:
            message = f"tasks outlived the sweep in {[str(w.directories[0]) for w in alive]}"
            raise OSError(errno.EBUSY, message)
        for group in alive:
            killed[str(group.directories[0])] = killed.get(str(group.directories[0]), 0) + (
                group.kill_all()
            )
        time.sleep(0.005)
    for group in workers:
        with contextlib.suppress(OSError):
            group.remove()
    for parent in orphans:
        with contextlib.suppress(OSError):
            parent.rmdir()
    return killed


@contextlib.contextmanager
def _unless_gone() -> Iterator[None]:
    """Ignore a cgroup removed while it was used: gone (ENOENT), or dead but open (ENODEV)."""
    try:
        yield
    except OSError as error:
        if not isinstance(error, FileNotFoundError) and error.errno != errno.ENODEV:
            raise


def _find_owned(root: Path) -> list[Path]:
    """Directories under ``root`` named by a dead orchestrator (not descending into them)."""
    found: list[Path] = []
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            if entry.name.startswith(PREFIX):
                if not _owner_alive(entry.name):
                    found.append(Path(entry.path))
            else:
                stack.append(Path(entry.path))
    return found


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
            with _unless_gone():
                found.update(int(pid) for pid in procs.read_text(encoding="ascii").split())
        return found

    def kill(self) -> bool:
        """Kill every process at once where the kernel can (v2 ``cgroup.kill``)."""
        if self.version != 2:
            return False
        for directory in self.directories:
            with _unless_gone():
                (directory / "cgroup.kill").write_text("1", encoding="ascii")
        return True

    def freeze(self, *, frozen: bool) -> None:
        """Freeze (or thaw) every task: a frozen task cannot fork, and dies once thawed.

        v1 writes ``freezer.state`` in the freezer controller's directory (if
        there is one); v2 writes ``cgroup.freeze``. A directory already gone is
        no error: its tasks are too.
        """
        if self.version == 1:
            path = self.paths.get("freezer")
            target = (path / "freezer.state") if path else None
            value = "FROZEN" if frozen else "THAWED"
        else:
            target = self.directories[0] / "cgroup.freeze" if self.directories else None
            value = "1" if frozen else "0"
        if target is not None:
            with _unless_gone():
                target.write_text(value, encoding="ascii")

    def kill_all(self) -> int:
        """Freeze, SIGKILL every task of every directory, thaw; return the tasks signalled.

        The worker cannot stop this: it cannot reach these files, a frozen task
        keeps its pending SIGKILL and dies as it is thawed, and v2 adds ``cgroup.kill``.
        """
        self.freeze(frozen=True)
        signalled = 0
        try:
            self.kill()
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    signalled += 1
        finally:
            self.freeze(frozen=False)
        return signalled

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
