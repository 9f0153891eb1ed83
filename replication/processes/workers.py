"""What the process backend reports and shares: statuses, the default launcher, the subreaper.

Split from :mod:`~replication.processes.orchestrator` along a seam: these are
the values and helpers the orchestrator hands out or holds process-wide, not
its lifecycle.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING

import attrs
import psutil

from replication._frozen import FrozenList
from replication._validation import immutable
from replication.errors import InvalidTypeError, InvalidValueError
from replication.processes.errors import LaunchError
from replication.processes.sandbox import WORKER_PATH, set_child_subreaper

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from replication.model import Manifest
    from replication.processes.cgroups import Usage

__all__ = [
    "WeakerIsolationWarning",
    "WorkerStatus",
    "absolute_paths",
    "cgroup_breach",
    "command_from_snapshot",
    "output_stream",
    "process_breach",
    "resolve_program",
    "subreaper",
]


class WeakerIsolationWarning(UserWarning):
    """Workers run with weaker isolation than a PID and network namespace with cgroup limits."""


@immutable
@attrs.frozen
class WorkerStatus:
    """What the kernel says about one worker now, and under which isolation it runs.

    ``state`` is ``running`` until its main process has exited and been reaped,
    then ``exited``, with its ``exit_status``; ``processes`` counts its live
    processes; ``memory_bytes`` and ``tasks`` come from its cgroups (``None``
    without them). ``isolation`` names every mechanism in force, and
    ``missing_fences`` each fence of full isolation that is not (R-PROC-3).
    A worker whose kill the kernel has not confirmed is ``kill_unconfirmed``.
    """

    worker_id: str
    state: str
    pid: int | None
    processes: int
    memory_bytes: int | None
    tasks: int | None
    isolation: str
    exit_status: int | None = None
    missing_fences: tuple[str, ...] = ()


def command_from_snapshot(manifest: Manifest) -> list[str]:
    """Return the argv in ``state_snapshot["command"]``, a list of strings (the default launcher).

    The manifest is signed, so the command is what the controller issued. A
    program named without a ``/`` is looked up on the worker's ``PATH``
    (``/usr/local/bin:/usr/bin:/bin``).
    """
    command = manifest.state_snapshot.get("command")
    if not isinstance(command, FrozenList | list | tuple) or not command:
        raise InvalidValueError(
            "state_snapshot['command']", "a non-empty list of strings (the argv)", command
        )
    argv = [str(part) for part in command if isinstance(part, str)]
    if len(argv) != len(command):
        raise InvalidTypeError("state_snapshot['command']", "a list of strings", command)
    return argv


def resolve_program(
    worker_id: str, argv: list[str], *, read_only: Sequence[str] | None
) -> list[str]:
    """Return ``argv`` with its program found on the worker's ``PATH``; else ``LaunchError``.

    With a sandbox (``read_only`` not ``None``) the program must lie inside its
    read-only view: ``/usr`` or one of the ``read_only`` paths (R-PROC-2).
    """
    if not argv:
        raise LaunchError(worker_id, "the launcher returned an empty command")
    program = shutil.which(argv[0], path=WORKER_PATH)
    if program is None:
        raise LaunchError(worker_id, f"{argv[0]!r} is not an executable on {WORKER_PATH}")
    if read_only is not None:
        resolved = Path(program).resolve()
        roots = [Path("/usr"), *(Path(path).resolve() for path in read_only)]
        if not any(resolved.is_relative_to(root) for root in roots):
            raise LaunchError(
                worker_id,
                f"{program!r} is not inside the sandbox's read-only view (/usr, /bin, /lib*, "
                f"and read_only={list(read_only)})",
            )
    return [program, *argv[1:]]


@contextlib.contextmanager
def output_stream(directory: Path | None, name: str) -> Iterator[IO[bytes] | int]:
    """Yield a worker's stdout and stderr: ``directory/name.log`` (appended), or discarded."""
    if directory is None:
        yield subprocess.DEVNULL
        return
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / f"{name}.log").open("ab") as stream:
        yield stream


def absolute_paths(field: str, paths: Sequence[str]) -> tuple[str, ...]:
    """Absolute host paths as exact strings (a ``str`` subclass could lie about its value)."""
    if isinstance(paths, str | bytes) or not isinstance(paths, list | tuple):
        raise InvalidTypeError(field, "a list of absolute paths", paths)
    checked = []
    for path in paths:
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidValueError(field, "absolute paths (strings starting with /)", path)
        checked.append(str.__str__(path))
    return tuple(checked)


def cgroup_breach(usage: Usage, limit: int, max_processes: int) -> tuple[str, str] | None:
    """Return the reason and measurement if the kernel's counters show a limit was hit."""
    if usage.oom_kills:
        return "memory_limit_exceeded", (
            f"the kernel's OOM killer fired {usage.oom_kills} times at {limit} bytes"
        )
    if usage.task_limit_hits:
        return "process_limit_exceeded", (
            f"{usage.task_limit_hits} forks refused at {max_processes} tasks"
        )
    return None


def process_breach(members: set[int], limit: int, max_processes: int) -> tuple[str, str] | None:
    """Without cgroups: the processes' resident memory and count against the limits."""
    resident = 0
    for pid in members:
        with contextlib.suppress(psutil.Error):
            resident += psutil.Process(pid).memory_info().rss
    if resident > limit:
        return "memory_limit_exceeded", f"{resident} bytes resident > {limit} bytes"
    if len(members) > max_processes:
        return "process_limit_exceeded", f"{len(members)} processes > {max_processes}"
    return None


class _Subreaper:
    """Counts the orchestrators that need this process to be a child subreaper."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0

    def acquire(self) -> None:
        with self._lock:
            if self._users == 0:
                set_child_subreaper(enabled=True)
            self._users += 1

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0:
                set_child_subreaper(enabled=False)


#: The one per process.
subreaper = _Subreaper()
