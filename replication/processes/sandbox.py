"""One worker's sandbox: started behind its fences, killed, and confirmed dead by the kernel.

With full isolation a worker runs as ``sh -> setpriv -> bwrap -> command``
(:mod:`~replication.processes.fences`): the shell joins the worker's cgroups,
sets its rlimits and becomes, through ``setpriv``, ``bwrap`` as the worker's
unprivileged uid (the sandbox's *supervisor*, a child of the orchestrator in a
session of its own), whose child is the namespace's init (its pid 1) and runs
the command. Nothing of the worker runs before it is in its cgroups.

Killing freezes the worker's cgroups, SIGKILLs every task in them, thaws them
(a frozen task dies as it thaws), and SIGKILLs the init through a pidfd (no
pid-reuse race): the kernel then kills every process of the namespace,
``setsid`` or not, and the init's exit is only reported once every one of
them is gone (the kernel reaps the whole namespace before its init). The
pidfd turning readable is that confirmation (R-PROC-5, R-PROC-16); a scan of
the process table and of the cgroups afterwards checks it.

With weaker isolation (no PID namespace) the worker is the leader of a new
session and process group, the orchestrator is a child subreaper (orphans come
back to it, not to the system's init), and a kill sweeps everything that
carries the sandbox's marker, shares its group or session, descends from it or
sits in its cgroups, until a scan finds nothing (R-PROC-3).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

import psutil

from replication.processes.fences import JOIN_FAILED, bwrap_argv, wrapper_argv
from replication.processes.seccomp import filter_fd

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from replication.processes.cgroups import CgroupSet

__all__ = [
    "MARKER",
    "WORKER_PATH",
    "Sandbox",
    "kill_sandboxes",
    "live_members",
    "set_child_subreaper",
    "start_sandbox",
]

#: The environment variable that names a worker's sandbox (``<orchestrator pid>:<token>:<n>``);
#: every process of the worker inherits it.
MARKER = "REPLICATION_SANDBOX"
#: The ``PATH`` a worker starts with: its environment holds nothing of the orchestrator's.
WORKER_PATH = "/usr/local/bin:/usr/bin:/bin"

#: How long a launch waits for the namespace's init to appear.
_START_TIMEOUT = 10.0
#: ``prctl`` option: orphaned descendants are re-parented to this process (Linux 3.4+).
_PR_SET_CHILD_SUBREAPER = 36


class Sandbox:
    """The runtime handle of one launched worker (not part of the model's state).

    ``supervisor`` is the orchestrator's child (``bwrap``, or with weaker
    isolation the worker itself); ``init`` the namespace's pid 1 as seen from
    outside, with a pidfd on it and a descriptor holding its PID namespace
    (so the namespace's inode cannot be reused while this handle checks it).
    ``group`` is the session and process group id (weaker isolation only).
    """

    def __init__(  # noqa: PLR0917 - built in one place, by start_sandbox
        self,
        worker_id: str,
        marker: str,
        supervisor: subprocess.Popen[bytes],
        init: int | None,
        pidfd: int | None,
        cgroups: CgroupSet | None,
        *,
        namespace_fd: int | None = None,
        pid_namespace: str | None = None,
        group: int | None = None,
    ) -> None:
        self.worker_id = worker_id
        self.marker = marker
        self.supervisor = supervisor
        self.init = init
        self.pidfd = pidfd
        self.cgroups = cgroups
        self.namespace_fd = namespace_fd
        self.pid_namespace = pid_namespace
        self.group = group

    @property
    def exited(self) -> bool:
        """Whether the worker's main process has exited (its namespace is then gone)."""
        if self.pidfd is None:
            return True
        # poll, not select: a pidfd may be numbered past select's limit of 1024.
        poller = select.poll()
        poller.register(self.pidfd, select.POLLIN)
        return bool(poller.poll(0))

    def release(self) -> None:
        """Close the descriptors and reap the supervisor (after a confirmed death)."""
        for fd in (self.pidfd, self.namespace_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.pidfd = self.namespace_fd = None

    def __repr__(self) -> str:
        return f"<Sandbox {self.worker_id} init={self.init} supervisor={self.supervisor.pid}>"


def start_sandbox(
    worker_id: str,
    marker: str,
    argv: Sequence[str],
    *,
    bwrap: str | None,
    setpriv: str | None,
    seccomp: bool,
    uid: int,
    isolate_network: bool,
    read_only: Sequence[str] = (),
    cgroups: CgroupSet | None,
    max_tasks: int,
    max_file_bytes: int,
    output: IO[bytes] | int,
) -> Sandbox:
    """Start ``argv`` in a new sandbox; raise ``OSError`` or ``RuntimeError`` if it cannot.

    ``bwrap`` is the bubblewrap binary when the sandbox is granted, else
    ``None`` (weaker isolation: a session and process group of its own, no
    namespaces); ``setpriv`` drops to ``uid`` first (when the orchestrator is
    root); ``seccomp`` installs the filter; ``isolate_network`` gives it a
    network namespace of its own; ``max_tasks`` is its ``RLIMIT_NPROC``, ``max_file_bytes``
    its ``RLIMIT_FSIZE``.
    """
    procs = [str(path) for path in cgroups.procs_files] if cgroups else []
    weaker = bwrap is None
    fd = filter_fd() if seccomp and not weaker else None
    # RLIMIT_NPROC counts the processes of a uid: it bounds the worker only where the
    # worker has a uid of its own (setpriv); as root it does not bind, and as the
    # orchestrator's own user it would count the orchestrator's processes too.
    soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    kept = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
    try:
        if bwrap is not None:
            inner = bwrap_argv(bwrap=bwrap, setpriv=setpriv, uid=uid, network=not isolate_network,
                               seccomp_fd=fd, read_only=read_only, argv=argv)  # fmt: skip
            tasks = str(max_tasks) if setpriv is not None else kept
            command = wrapper_argv(procs, max_tasks=tasks, max_file_bytes=max_file_bytes,
                                   then=inner)  # fmt: skip
        else:
            command = wrapper_argv(procs, max_tasks=kept, max_file_bytes=max_file_bytes,
                                   then=argv)  # fmt: skip
        supervisor = subprocess.Popen(  # noqa: S603 - argv built above, no shell string from input
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
            cwd="/",
            env={"PATH": WORKER_PATH, MARKER: marker},
            # Never the orchestrator's session or group: nothing of the worker can signal it.
            start_new_session=True,
            pass_fds=() if fd is None else (fd,),
        )
    finally:
        if fd is not None:
            os.close(fd)
    if weaker:
        return _adopt_leader(worker_id, marker, supervisor, cgroups)
    return _find_init(worker_id, marker, supervisor, cgroups)


def _adopt_leader(
    worker_id: str, marker: str, supervisor: subprocess.Popen[bytes], cgroups: CgroupSet | None
) -> Sandbox:
    pidfd = os.pidfd_open(supervisor.pid)  # our own child: it cannot be reaped behind our back
    return Sandbox(
        worker_id, marker, supervisor, supervisor.pid, pidfd, cgroups, group=supervisor.pid
    )


def _find_init(
    worker_id: str, marker: str, supervisor: subprocess.Popen[bytes], cgroups: CgroupSet | None
) -> Sandbox:
    """Wait for ``bwrap``'s one child, the namespace's init, and take hold of it."""
    children = Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children")
    deadline = time.monotonic() + _START_TIMEOUT
    pause = 0.0002
    while True:
        try:
            found = children.read_text(encoding="ascii").split()
        except OSError:
            found = []
        if found:
            break
        code = supervisor.poll()
        if code is not None:
            if code == JOIN_FAILED:
                message = "the kernel refused to add it to its cgroups"
                raise RuntimeError(message)
            # The command ran and exited before it could be watched: a finished worker.
            return Sandbox(worker_id, marker, supervisor, None, None, cgroups)
        if time.monotonic() > deadline:
            supervisor.kill()
            supervisor.wait()
            message = f"no namespace init appeared within {_START_TIMEOUT} s"
            raise RuntimeError(message)
        time.sleep(pause)
        pause = min(pause * 2, 0.001)
    init = int(found[0])
    try:
        pidfd = os.pidfd_open(init)
    except ProcessLookupError:
        return Sandbox(worker_id, marker, supervisor, None, None, cgroups)
    try:
        namespace_fd = os.open(f"/proc/{init}/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        namespace = str(Path(f"/proc/{init}/ns/pid").readlink())
        # The pidfd pins the process it was opened on: if that process is still
        # bwrap's child now, the pid was not reused in between.
        still_child = str(init) in children.read_text(encoding="ascii").split()
    except OSError:
        still_child = False
    if not still_child:
        os.close(pidfd)
        return Sandbox(worker_id, marker, supervisor, None, None, cgroups)
    return Sandbox(
        worker_id,
        marker,
        supervisor,
        init,
        pidfd,
        cgroups,
        namespace_fd=namespace_fd,
        pid_namespace=namespace,
    )


# -- finding a sandbox's processes --------------------------------------------------------


def _marker_of(pid: int) -> str | None:
    try:
        return psutil.Process(pid).environ().get(MARKER)
    except (psutil.Error, OSError):
        return None


def live_members(
    sandboxes: Iterable[Sandbox],
    markers: dict[str, str] | None = None,
    *,
    weaker: bool,
    since: float = 0.0,
    elsewhere: frozenset[str] = frozenset(),
) -> dict[str, set[int]]:
    """Every live (not zombie) process of each sandbox, by worker id, from one scan.

    A process belongs to a sandbox when it sits in its PID namespace or its
    cgroups, carries its marker (``markers`` adds those of sandboxes already
    gone, marker -> worker id), or, with weaker isolation, shares its session
    or process group or descends from one that belongs. Markers are read only
    from processes outside this process's PID namespace or, with weaker
    isolation, started after ``since`` (a time as ``time.time()`` gives):
    older processes cannot carry one. ``elsewhere`` names PID namespaces known
    to be other sandboxes': their processes are skipped without reading them.
    """
    sandboxes = list(sandboxes)
    by_namespace = {s.pid_namespace: s.worker_id for s in sandboxes if s.pid_namespace}
    by_marker = dict(markers or {})
    by_marker.update({s.marker: s.worker_id for s in sandboxes})
    by_group = {s.group: s.worker_id for s in sandboxes if s.group is not None}
    by_pid = {pid: s.worker_id for s in sandboxes if s.cgroups for pid in s.cgroups.pids()}
    owners: dict[int, str] = {}
    parents: dict[int, int] = {}
    if weaker:
        # process_iter keeps its Process objects between scans: one stat read each.
        for process in psutil.process_iter(["ppid", "create_time"]):
            try:
                owner = by_pid.get(process.pid) or _weaker_owner(
                    process, by_group, by_marker, since
                )
            except (OSError, psutil.Error):
                continue  # gone while we looked
            parents[process.pid] = process.info["ppid"]
            if owner is not None:
                owners[process.pid] = owner
        _inherit(owners, parents)
    else:
        skip = elsewhere | {os.readlink("/proc/self/ns/pid")}  # noqa: PTH115 - see below
        for pid in psutil.pids():
            owner = by_pid.get(pid)
            try:
                if owner is None:
                    # os.readlink: this loop reads every process's link, and pathlib
                    # costs three times as much per call.
                    namespace = os.readlink(f"/proc/{pid}/ns/pid")  # noqa: PTH115
                    owner = by_namespace.get(namespace)
                    if owner is None and namespace not in skip:
                        owner = by_marker.get(_marker_of(pid) or "")
            except OSError:
                continue  # gone while we looked
            if owner is not None:
                owners[pid] = owner
    found: dict[str, set[int]] = {}
    for pid, owner in owners.items():
        if _alive(pid):
            found.setdefault(owner, set()).add(pid)
    return found


def _weaker_owner(
    process: psutil.Process, by_group: dict[int, str], by_marker: dict[str, str], since: float
) -> str | None:
    pid = process.pid
    owner = by_group.get(os.getpgid(pid)) or by_group.get(os.getsid(pid))
    if owner is None and (process.info["create_time"] or 0) >= since:
        owner = by_marker.get(_marker_of(pid) or "")
    return owner


def _inherit(owners: dict[int, str], parents: dict[int, int]) -> None:
    """Give every process the owner of its nearest owned ancestor."""
    for pid in parents:
        chain = []
        current: int | None = pid
        while current is not None and current not in owners and current not in chain:
            chain.append(current)
            current = parents.get(current)
        if current is not None and current in owners:
            for member in chain:
                owners[member] = owners[current]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# -- killing -----------------------------------------------------------------------------


def kill_sandboxes(
    sandboxes: Sequence[Sandbox],
    *,
    weaker: bool,
    timeout: float,
    children: set[int],
    since: float = 0.0,
    elsewhere: frozenset[str] = frozenset(),
) -> dict[str, tuple[int, ...]]:
    """SIGKILL every sandbox and wait for the kernel to confirm; return the survivors.

    The survivors (worker id -> pids still alive after ``timeout`` seconds) are
    empty on success. Sandboxes confirmed dead are released; survivors keep
    their handles, so that the kill can be retried. ``children`` are the pids of
    every supervisor the caller holds, which the subreaper must leave to them;
    ``since`` and ``elsewhere`` are as for :func:`live_members`.
    """
    deadline = time.monotonic() + timeout
    for sandbox in sandboxes:
        _signal(sandbox, weaker=weaker)
    survivors: dict[str, set[int]] = {}
    while True:
        if not weaker:
            _await_inits(sandboxes, deadline)
        for sandbox in sandboxes:
            if sandbox.exited:
                _reap(sandbox, deadline)
        survivors = live_members(sandboxes, weaker=weaker, since=since, elsewhere=elsewhere)
        if not survivors or time.monotonic() > deadline:
            break
        by_id = {s.worker_id: s for s in sandboxes}
        for worker_id, pids in survivors.items():
            cgroups = by_id[worker_id].cgroups if worker_id in by_id else None
            if cgroups is not None:
                cgroups.kill_all()
            for pid in pids:
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()
        time.sleep(0.001)
    for sandbox in sandboxes:
        if sandbox.worker_id not in survivors:
            _reap(sandbox, deadline)
            sandbox.release()
    if weaker:
        reap_adopted(children)
    return {worker_id: tuple(sorted(pids)) for worker_id, pids in survivors.items()}


def _signal(sandbox: Sandbox, *, weaker: bool) -> None:
    if sandbox.cgroups is not None:
        # Freeze, SIGKILL every task, thaw: frozen or forking, each one dies.
        sandbox.cgroups.kill_all()
    if sandbox.pidfd is not None:
        # ESRCH: it exited by itself, and its namespace with it.
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(sandbox.pidfd, signal.SIGKILL)
    if weaker and sandbox.group is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(sandbox.group, signal.SIGKILL)


def _await_inits(sandboxes: Sequence[Sandbox], deadline: float) -> None:
    """Wait until every init's pidfd is readable: the kernel has emptied its namespace."""
    poller = select.poll()
    waiting = {s.pidfd for s in sandboxes if s.pidfd is not None}
    for fd in waiting:
        poller.register(fd, select.POLLIN)
    while waiting:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        for fd, _ in poller.poll(remaining * 1000):
            poller.unregister(fd)
            waiting.discard(fd)


def _reap(sandbox: Sandbox, deadline: float) -> None:
    """Wait for the supervisor; ``bwrap`` exits as soon as its init has exited."""
    if sandbox.supervisor.returncode is not None:
        return
    try:
        sandbox.supervisor.wait(max(0.0, deadline - time.monotonic()) + 1.0)
    except subprocess.TimeoutExpired:
        sandbox.supervisor.kill()
        sandbox.supervisor.wait()


def reap_adopted(known: set[int]) -> None:
    """Reap the zombies this process adopted as a subreaper (not its own ``Popen`` children)."""
    with contextlib.suppress(psutil.Error):
        for child in psutil.Process().children():
            if child.pid in known:
                continue
            with contextlib.suppress(psutil.Error, ChildProcessError):
                if child.status() == psutil.STATUS_ZOMBIE:
                    os.waitpid(child.pid, os.WNOHANG)


def set_child_subreaper(*, enabled: bool) -> None:
    """Make this process the reaper of its descendants' orphans, via ``prctl(2)``.

    Python has no binding for ``PR_SET_CHILD_SUBREAPER``; this is the one call
    made through ctypes. Raises ``OSError`` if the kernel refuses it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, int(enabled), 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
