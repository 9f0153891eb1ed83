"""The command line that puts a worker behind every fence: cgroups, rlimits, uid, bubblewrap.

A worker starts as ``sh -> setpriv -> bwrap -> command``. The shell, still the
orchestrator's root, joins the worker's cgroups and lowers its rlimits (R-PROC-13);
``setpriv`` (util-linux) drops to the worker's own unprivileged host uid, with no
supplementary groups, no capabilities and ``no_new_privs``; ``bwrap``
(bubblewrap) then makes a user namespace in which that uid is root, and PID,
network, mount, IPC, UTS and cgroup namespaces; its child is the namespace's
init (pid 1), which runs the command. The mount namespace holds read-only
binds of ``/usr`` and the few files of ``/etc`` a program needs, a ``/proc``
of the worker's own PID namespace, a minimal ``/dev``, and private ``/tmp``
and ``/scratch`` (tmpfs): no ``/sys``, no host socket, no host ``/proc``
(R-PROC-12). ``--die-with-parent`` gives the sandbox a parent-death signal,
so it dies with the orchestrator (R-PROC-15); ``--new-session`` puts it in a
session of its own (R-PROC-14); ``--seccomp`` installs the filter of
:mod:`~replication.processes.seccomp` (R-PROC-11).
"""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = [
    "JOIN_FAILED",
    "SANDBOX_UID_BASE",
    "SCRATCH",
    "UIDS_PER_PROCESS",
    "bwrap_argv",
    "next_sandbox_uid",
    "release_sandbox_uid",
    "uid_block",
    "wrapper_argv",
]

#: The first host uid given to workers; each worker gets its own above it.
SANDBOX_UID_BASE = 1_500_000_000
#: Where the worker's private writable directory is, inside its sandbox.
SCRATCH = "/scratch"
#: The wrapper's exit status when a cgroup refused the worker.
JOIN_FAILED = 125
#: Open files a worker may hold (RLIMIT_NOFILE).
_MAX_OPEN_FILES = 1024
#: The unit of the shell's ``ulimit -f``.
_FILE_BLOCK = 512

#: Joins the cgroups named by its arguments (their count first), sets the rlimits
#: (no core dump, open files, processes of its uid, file size in 512-byte blocks: dash's
#: unit), then becomes the rest.
_WRAPPER = (
    'n=$1; shift; while [ "$n" -gt 0 ]; do echo 0 > "$1" || exit 125; shift; n=$((n - 1)); done; '
    'ulimit -c 0 && ulimit -n "$1" && ulimit -p "$2" && ulimit -f "$3" || exit 125; shift 3; '
    'exec "$@"'
)
#: Top-level directories that are symbolic links into /usr on a merged-/usr system,
#: or directories to bind read-only otherwise.
_SYSTEM_DIRECTORIES = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: The files of /etc a program may need to start: the loader's cache, users, time zone.
_ETC = (
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
    "/etc/passwd", "/etc/group", "/etc/nsswitch.conf", "/etc/localtime",
)  # fmt: skip
#: Read too when the worker keeps the network (name resolution).
_ETC_NETWORK = ("/etc/resolv.conf", "/etc/hosts", "/etc/host.conf", "/etc/gai.conf", "/etc/ssl")

#: Host uids per orchestrator process: the blocks of two pids never meet, up to the largest
#: pid Linux allows (2**22), and the last one ends below 2**32 - 1 (no uid).
UIDS_PER_PROCESS = 600
_PID_LIMIT = 1 << 22

_serials = itertools.count(1)
#: The uids of this process's sandboxes that may still have a process: never given twice.
_in_use: set[int] = set()
_uid_lock = threading.Lock()


def uid_block(pid: int) -> range:
    """Return the host uids the sandboxes of orchestrator process ``pid`` get (no other pid's)."""
    start = SANDBOX_UID_BASE + (pid % _PID_LIMIT) * UIDS_PER_PROCESS
    return range(start, start + UIDS_PER_PROCESS)


def next_sandbox_uid() -> int:
    """Return a host uid for the next worker: its own, unprivileged, unlikely to be anyone's.

    From this process's block (so distinct from every other live orchestrator
    process's) and never one still held by a sandbox of this process (so
    ``RLIMIT_NPROC``, counted per uid, is per worker); release it with
    :func:`release_sandbox_uid` once the sandbox is confirmed dead. Raises
    ``RuntimeError`` if all :data:`UIDS_PER_PROCESS` are held.
    """
    block = uid_block(os.getpid())
    with _uid_lock:
        for _ in range(UIDS_PER_PROCESS):
            uid = block[next(_serials) % UIDS_PER_PROCESS]
            if uid not in _in_use:
                _in_use.add(uid)
                return uid
    message = f"all {UIDS_PER_PROCESS} sandbox uids of this process are held by live sandboxes"
    raise RuntimeError(message)


def release_sandbox_uid(uid: int) -> None:
    """Let :func:`next_sandbox_uid` give ``uid`` again (its sandbox is confirmed dead)."""
    with _uid_lock:
        _in_use.discard(uid)


def wrapper_argv(
    procs_files: Sequence[str], *, max_tasks: str, max_file_bytes: int, then: Sequence[str]
) -> list[str]:
    """Return the root shell that joins the cgroups, sets the rlimits, then execs ``then``.

    ``max_file_bytes`` becomes ``RLIMIT_FSIZE`` (rounded down to whole 512-byte blocks, at
    least one): the largest file the worker may write or allocate, its output log on the
    host included, so that it cannot fill the host's disk (R-PROC-17).
    """
    blocks = max(1, max_file_bytes // _FILE_BLOCK)
    return [
        "/bin/sh", "-c", _WRAPPER, "sh", str(len(procs_files)), *procs_files,
        str(_MAX_OPEN_FILES), max_tasks, str(blocks), *then,
    ]  # fmt: skip


def bwrap_argv(
    *,
    bwrap: str,
    setpriv: str | None,
    uid: int,
    network: bool,
    seccomp_fd: int | None,
    read_only: Sequence[str],
    argv: Sequence[str],
) -> list[str]:
    """``setpriv`` to ``uid`` (when running as root), then ``bwrap`` around ``argv``.

    ``network`` keeps the host's network namespace (``allow_external``);
    ``read_only`` are further host paths bound read-only at the same place.
    """
    command: list[str] = []
    if setpriv is not None:
        command += [
            setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
        ]  # fmt: skip
    command += [
        bwrap, "--unshare-all", "--die-with-parent", "--new-session",
        "--uid", "0", "--gid", "0", "--cap-drop", "ALL", "--hostname", "sandbox",
        "--ro-bind", "/usr", "/usr",
    ]  # fmt: skip
    if network:
        command.append("--share-net")
    for directory in _SYSTEM_DIRECTORIES:
        path = Path(directory)
        if path.is_symlink():
            command += ["--symlink", str(path.readlink()), directory]
        elif path.is_dir():
            command += ["--ro-bind", directory, directory]
    for name in (*_ETC, *(_ETC_NETWORK if network else ())):
        command += ["--ro-bind-try", name, name]
    for name in read_only:
        command += ["--ro-bind", name, name]
    command += [
        # The sandbox's own /tmp and scratch directory: private tmpfs, nothing on the host.
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", SCRATCH,  # noqa: S108
        # The root (bwrap's own tmpfs, holding /etc's mount points) read-only too.
        "--remount-ro", "/", "--chdir", "/",
    ]  # fmt: skip
    if seccomp_fd is not None:
        command += ["--seccomp", str(seccomp_fd)]
    return [*command, "--", *argv]
