"""``ProcessOrchestrator``: the seed's orchestrator over real, isolated Linux processes.

It is a :class:`~replication.orchestrator.SandboxOrchestrator` whose state is
backed by processes: every change of its containers, whether its own call or
its controller's commit, goes through :meth:`ProcessOrchestrator._install`,
which starts the sandboxes of the containers that appear and kills those of the
containers that go, before the new state is committed (R-PROC-1). So the
policy stays the core's, unchanged, and the conformance kit checks this backend
exactly as it checks the simulation, plus one invariant about real processes
(INV-PROCESSES).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import immutables

from replication import _validation as v
from replication.errors import InvalidTypeError
from replication.model import OrchestratorState
from replication.orchestrator import SandboxOrchestrator
from replication.processes.cgroups import (
    CgroupSet,
    Limits,
    Usage,
    make_parent,
    owner_name,
    sanitize,
    sweep_orphans,
)
from replication.processes.errors import (
    IsolationUnavailable,
    KillUnconfirmed,
    LaunchError,
    ProcessBackendError,
)
from replication.processes.fences import next_sandbox_uid, release_sandbox_uid
from replication.processes.isolation import Isolation, cached_isolation, cgroup_roots
from replication.processes.sandbox import (
    Sandbox,
    kill_sandboxes,
    live_members,
    start_sandbox,
)
from replication.processes.statefile import StateFile, process_identity, recover
from replication.processes.watchdog import Watchdog
from replication.processes.workers import (
    WeakerIsolationWarning,
    WorkerStatus,
    absolute_paths,
    cgroup_breach,
    command_from_snapshot,
    output_stream,
    process_breach,
    resolve_program,
    subreaper,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from replication.clock import Clock
    from replication.model import ContainerRecord, Manifest
    from replication.observability import StructuredLogger
    from replication.processes.statefile import Record

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_PROCESSES",
    "ProcessOrchestrator",
    "WeakerIsolationWarning",
    "WorkerStatus",
    "command_from_snapshot",
]

#: Tasks (processes and threads) a worker may hold at once, unless told otherwise.
DEFAULT_MAX_PROCESSES = 64
#: The largest file a worker may write, its output log on the host included (RLIMIT_FSIZE).
DEFAULT_MAX_FILE_BYTES = 64 * 1024 * 1024
#: The sandbox's own tasks in the worker's cgroups and uid: bwrap and its init (pid 1).
_SANDBOX_TASKS = 2
#: RLIMIT_NPROC, the second fence, sits this far above the cgroup's pids.max, so that the
#: first fence is the one that refuses a fork and its counter (pids.events) records it.
_RLIMIT_MARGIN = 16


class ProcessOrchestrator(SandboxOrchestrator):
    """Runs each container as a real process tree in its own namespaces and cgroups.

    ``launcher`` turns a manifest into the argv to run (default:
    :func:`command_from_snapshot`). Construction probes the kernel and raises
    :class:`IsolationUnavailable` unless full isolation is granted or
    ``accept_weaker_isolation`` is true (then it warns, and says so in every
    status). ``max_processes`` bounds each worker's tasks; ``state_file``
    records the sandboxes, and at construction kills those a previous
    orchestrator left there; ``kill_timeout`` is how long a kill waits for the
    kernel's confirmation; ``output`` is a directory for each worker's
    stdout and stderr (default: discarded), and ``max_file_bytes`` the largest
    file a worker may write there or anywhere (``RLIMIT_FSIZE``, so that a
    worker cannot fill the host's disk); ``read_only`` names host paths
    bound read-only inside every sandbox, beside ``/usr`` (a program outside
    them is refused at launch). Construction also kills whatever is left in
    the cgroups of orchestrators that died, and a watchdog process kills this
    one's workers if this process dies (R-PROC-15). Call :meth:`close` (or use
    ``with``) to kill whatever still runs.
    """

    def __init__(
        self,
        logger: StructuredLogger | None = None,
        *,
        clock: Clock | None = None,
        launcher: Callable[[Manifest], Sequence[str]] | None = None,
        accept_weaker_isolation: bool = False,
        isolation: Isolation | None = None,
        max_processes: int = DEFAULT_MAX_PROCESSES,
        state_file: str | os.PathLike[str] | None = None,
        kill_timeout: float = 10.0,
        output: str | os.PathLike[str] | None = None,
        read_only: Sequence[str] = (),
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ) -> None:
        super().__init__(logger, clock=clock)
        self.max_processes = v.check_int("max_processes", max_processes, minimum=1)
        self.max_file_bytes = v.check_int("max_file_bytes", max_file_bytes, minimum=512)
        self.kill_timeout = v.check_number("kill_timeout", kill_timeout, minimum=0, inclusive=False)
        accept_weaker = v.check_bool("accept_weaker_isolation", accept_weaker_isolation)
        if launcher is not None and not callable(launcher):
            raise InvalidTypeError("launcher", "a callable taking a Manifest", launcher)
        if isolation is not None and type(isolation) is not Isolation:
            raise InvalidTypeError("isolation", "an Isolation (from probe_isolation)", isolation)
        self.isolation = isolation if isolation is not None else cached_isolation()
        if not self.isolation.full and not accept_weaker:
            raise IsolationUnavailable(self.isolation)
        self.launcher = launcher or command_from_snapshot
        self.read_only = absolute_paths("read_only", read_only)
        self.output = Path(output) if output is not None else None
        self.token = secrets.token_hex(6)
        # Markers are read only from processes started after this (a second's margin
        # for the coarse start times of /proc).
        self._since = time.time() - 1.0
        self._weaker = self.isolation.bwrap is None
        self._sandboxes: dict[str, Sandbox] = {}
        #: marker -> worker id of every sandbox ever started here (for INV-PROCESSES).
        self._markers: dict[str, str] = {}
        self._records: dict[str, Record] = {}
        #: worker id -> its host uid, held until its death is confirmed (R-PROC-10).
        self._uids: dict[str, int] = {}
        #: Workers whose death the kernel did not confirm, kept to retry: no launch until it does.
        self._unconfirmed: dict[str, Sandbox] = {}
        self._retrier: threading.Thread | None = None
        #: Kills the workers when this process dies, however (R-PROC-15); started at the
        #: first launch with cgroups, stopped by a close() that confirmed every death.
        self._watchdog: Watchdog | None = None
        self._closed = False
        self._serial = 0
        self._state_file = StateFile(Path(state_file)) if state_file is not None else None
        self.recovered = self._recover()
        #: What was left in the cgroups of dead orchestrators and killed, by cgroup directory.
        self.swept = self._sweep_orphans()
        try:
            self._parents = make_parent(dict(self.isolation.cgroups), owner_name(self.token))
        except OSError as error:
            message = f"cannot create the orchestrator's cgroups: {error}"
            raise ProcessBackendError(message) from error
        self._subreaping = self._weaker
        if self._subreaping:
            subreaper.acquire()
        self.logger.log(
            "process_isolation",
            level=self.isolation.level,
            detail=self.isolation.describe(),
            refused=list(self.isolation.refused),
            missing=list(self.isolation.missing),
        )
        if not self.isolation.full:
            warnings.warn(
                f"ProcessOrchestrator runs with {self.isolation.describe()} "
                f"({'; '.join(self.isolation.refused)})",
                WeakerIsolationWarning,
                stacklevel=2,
            )

    # -- the extension point -----------------------------------------------------------

    def _install(self, state: OrchestratorState) -> None:
        """Start and stop processes until they match ``state``, then make it current.

        Kills first: each removed container's sandbox is killed and confirmed
        dead; a survivor is reported and retried, never left recorded as running
        nor allowed to stop the commit (R-PROC-6). Then launches: if any fails,
        those started here are killed and :class:`LaunchError` is raised with
        nothing changed (R-PROC-4).
        """
        current = self._state.containers
        target = state.containers
        gone = [worker_id for worker_id in current if worker_id not in target]
        added = [record for worker_id, record in target.items() if worker_id not in current]
        if gone:
            self._kill(gone)
            if added:  # no transition both kills and launches; if one did, kills stand
                self._state = OrchestratorState(
                    immutables.Map({w: r for w, r in target.items() if w in current})
                )
        if added:
            self._launch(added)
        self._state = state

    def _kill(self, worker_ids: list[str]) -> None:
        """Kill the sandboxes of ``worker_ids``; quarantine the unconfirmed, never raise.

        The policy's decision stands whatever the kernel says: a kill switch is
        engaged even if a process outlives it (R-PROC-6). A survivor's sandbox is
        kept in quarantine, reported (``process_kill_unconfirmed`` with its pids,
        :attr:`unconfirmed`, :meth:`live_processes`) and killed again until the
        kernel confirms it; until then nothing is launched.
        """
        sandboxes = [self._sandboxes[w] for w in worker_ids if w in self._sandboxes]
        survivors = self._kill_sandboxes(sandboxes)
        for worker_id in worker_ids:
            if worker_id in survivors:
                self._unconfirmed[worker_id] = self._sandboxes.pop(worker_id)
            elif worker_id in self._sandboxes:
                self._forget(worker_id)
        self._save()
        for worker_id in worker_ids:
            if worker_id in survivors:
                self.logger.log("process_kill_unconfirmed", worker_id=worker_id,
                                pids=list(survivors[worker_id]))  # fmt: skip
            else:
                self.logger.log("process_killed", worker_id=worker_id, pids=[])
        if survivors:
            self._schedule_retry()

    def _kill_sandboxes(self, sandboxes: list[Sandbox]) -> dict[str, tuple[int, ...]]:
        killing = {s.worker_id for s in sandboxes}
        children = {
            s.supervisor.pid for s in (*self._sandboxes.values(), *self._unconfirmed.values())
        }
        elsewhere = frozenset(
            s.pid_namespace
            for s in (*self._sandboxes.values(), *self._unconfirmed.values())
            if s.pid_namespace and s.worker_id not in killing
        )
        return kill_sandboxes(
            sandboxes,
            weaker=self._weaker,
            timeout=self.kill_timeout,
            children=children,
            since=self._since,
            elsewhere=elsewhere,
        )

    @property
    def unconfirmed(self) -> dict[str, tuple[int, ...]]:
        """Workers killed whose death the kernel has not confirmed yet, with their live pids."""
        with self._lock:
            found = live_members(list(self._unconfirmed.values()), weaker=self._weaker,
                                 since=self._since)  # fmt: skip
            return {w: tuple(sorted(found.get(w, ()))) for w in sorted(self._unconfirmed)}

    def retry_kills(self) -> dict[str, tuple[int, ...]]:
        """Kill the quarantined workers again; return those still unconfirmed, with their pids."""
        with self._lock:
            if not self._unconfirmed:
                return {}
            survivors = self._kill_sandboxes(list(self._unconfirmed.values()))
            for worker_id in [w for w in self._unconfirmed if w not in survivors]:
                sandbox = self._unconfirmed.pop(worker_id)
                self._sandboxes[worker_id] = sandbox
                self._forget(worker_id)
                self.logger.log("process_killed", worker_id=worker_id, pids=[], retried=True)
            self._save()
            return dict(survivors)

    def _schedule_retry(self) -> None:
        if self._retrier is not None and self._retrier.is_alive():
            return
        self._retrier = threading.Thread(
            target=self._retry_loop, name="replication-kill-retry", daemon=True
        )
        self._retrier.start()

    def _retry_loop(self) -> None:
        """Retry the unconfirmed kills with a growing pause, until none is left or closed."""
        pause = 0.1
        while True:
            time.sleep(pause)
            with self._lock:
                if self._closed or not self._unconfirmed:
                    return
                try:
                    self.retry_kills()
                except Exception as error:  # noqa: BLE001 - a retry thread must not die
                    self.logger.log("process_kill_retry_failed", error=repr(error))
            pause = min(pause * 2, 5.0)

    def _forget(self, worker_id: str) -> None:
        sandbox = self._sandboxes.pop(worker_id)
        self._records.pop(worker_id, None)
        if worker_id in self._uids:
            release_sandbox_uid(self._uids.pop(worker_id))
        if sandbox.cgroups is not None:
            with contextlib.suppress(OSError):
                sandbox.cgroups.remove()

    def _launch(self, records: list[ContainerRecord]) -> None:
        started: list[Sandbox] = []
        try:
            for record in records:
                started.append(self._start(record.manifest))
        except BaseException as error:
            if isinstance(error, LaunchError):
                self.logger.log("process_launch_failed", worker_id=error.worker_id,
                                error=error.reason)  # fmt: skip
            children = {s.supervisor.pid for s in self._sandboxes.values()}
            kill_sandboxes(started, weaker=self._weaker, timeout=self.kill_timeout,
                           children=children, since=self._since)  # fmt: skip
            for sandbox in started:
                self._forget(sandbox.worker_id)
            self._save()
            raise

    def _start(self, manifest: Manifest) -> Sandbox:
        worker_id = manifest.worker_id
        if self._unconfirmed and self.retry_kills():
            raise LaunchError(
                worker_id,
                f"the death of {sorted(self._unconfirmed)} is unconfirmed: nothing is launched "
                "until a kill confirms it",
            )
        argv = self._argv(manifest)
        self._serial += 1
        name = f"{self._serial}-{sanitize(worker_id)}"
        marker = f"{os.getpid()}:{self.token}:{self._serial}"
        cgroups = self._cgroups(worker_id, name, manifest)
        if cgroups is not None and self._watchdog is None:
            try:
                self._watchdog = Watchdog(cgroups.version, list(self._parents.values()))
            except OSError as error:
                with contextlib.suppress(OSError):
                    cgroups.remove()
                raise LaunchError(worker_id, f"cannot start the watchdog: {error}") from error
        self._records[worker_id] = {"marker": marker, "cgroups": _dirs(cgroups)}
        self._markers[marker] = worker_id
        self._save()  # before the start: a crash in between still leaves a trace to sweep
        try:
            self._uids[worker_id] = uid = next_sandbox_uid()
            with output_stream(self.output, name) as output:
                sandbox = start_sandbox(
                    worker_id,
                    marker,
                    argv,
                    bwrap=self.isolation.bwrap,
                    setpriv=self.isolation.setpriv,
                    seccomp=self.isolation.seccomp,
                    uid=uid,
                    isolate_network=self._isolates_network(manifest),
                    read_only=self.read_only,
                    cgroups=cgroups,
                    max_tasks=self.max_processes + _SANDBOX_TASKS + _RLIMIT_MARGIN,
                    max_file_bytes=self.max_file_bytes,
                    output=output,
                )
        except (OSError, RuntimeError) as error:
            self._records.pop(worker_id, None)
            if worker_id in self._uids:
                release_sandbox_uid(self._uids.pop(worker_id))
            if cgroups is not None:
                with contextlib.suppress(OSError):
                    cgroups.remove()
            self._save()
            raise LaunchError(worker_id, str(error)) from error
        self._sandboxes[worker_id] = sandbox
        if self._state_file is not None:  # start times cost a read each: only for a successor
            self._records[worker_id].update(
                supervisor=process_identity(sandbox.supervisor.pid),
                init=process_identity(sandbox.init),
            )
            self._save()
        self.logger.log("process_started", worker_id=worker_id, pid=sandbox.init,
                        isolation=self.isolation.describe())  # fmt: skip
        return sandbox

    def _argv(self, manifest: Manifest) -> list[str]:
        worker_id = manifest.worker_id
        try:
            argv = [str.__str__(part) for part in self.launcher(manifest)]
        except Exception as error:  # a launcher is user code: whatever it raises, fail closed
            raise LaunchError(worker_id, f"no command: {error!r}") from error
        return resolve_program(worker_id, argv, read_only=None if self._weaker else self.read_only)

    def _isolates_network(self, manifest: Manifest) -> bool:
        """No network unless the policy allows external egress (R-PROC-2)."""
        return self.isolation.network_namespace and not (
            manifest.resources.network_policy.allow_external
        )

    def _cgroups(self, worker_id: str, name: str, manifest: Manifest) -> CgroupSet | None:
        if not self._parents or self.isolation.cgroup_version is None:
            return None
        resources = manifest.resources
        # bwrap and its init sit in the cgroups too: two tasks more than the worker's own.
        limits = Limits(
            memory_bytes=resources.memory_limit_mb * 1024 * 1024,
            max_tasks=self.max_processes + (0 if self._weaker else _SANDBOX_TASKS),
            cpus=resources.cpu_limit,
        )
        try:
            cgroups = CgroupSet.create(self.isolation.cgroup_version, self._parents, name)
        except OSError as error:
            raise LaunchError(worker_id, f"cannot create its cgroups: {error}") from error
        try:
            cgroups.apply(limits)
        except OSError as error:
            with contextlib.suppress(OSError):
                cgroups.remove()
            raise LaunchError(worker_id, f"the kernel refused its limits: {error}") from error
        return cgroups

    def _save(self) -> None:
        if self._state_file is not None:
            self._state_file.write(self._records)

    def _sweep_orphans(self) -> dict[str, int]:
        """Kill what orchestrators that died left in their cgroups (kernel facts, no state file)."""
        if self.isolation.cgroup_version is None:
            return {}
        try:
            killed = sweep_orphans(
                cgroup_roots(self.isolation),
                version=self.isolation.cgroup_version,
                timeout=self.kill_timeout,
            )
        except OSError as error:
            message = f"cannot kill what a dead orchestrator left in its cgroups: {error}"
            raise ProcessBackendError(message) from error
        for directory, count in sorted(killed.items()):
            self.logger.log("process_orphans_killed", cgroup=directory, killed=count)
        return killed

    def _recover(self) -> dict[str, int]:
        if self._state_file is None:
            return {}
        records = self._state_file.read()
        if not records:
            return {}
        killed = recover(records, timeout=self.kill_timeout)
        self._state_file.write({})
        for worker_id, count in sorted(killed.items()):
            self.logger.log("process_recovered", worker_id=worker_id, killed=count)
        return killed

    # -- reading the kernel ------------------------------------------------------------

    def usage(self, worker_id: str) -> Usage | None:
        """Return the worker's usage and limit hits from its cgroups (``None`` without them)."""
        with self._lock:
            sandbox = self._sandboxes.get(worker_id)
            cgroups = sandbox.cgroups if sandbox is not None else None
            return cgroups.usage() if cgroups is not None else None

    def live_processes(self) -> dict[str, frozenset[int]]:
        """Return the live processes of every worker ever launched here, by worker id.

        Read from the kernel (PID namespaces, cgroups, markers), never from
        this orchestrator's records: this is what INV-PROCESSES checks.
        """
        with self._lock:
            sandboxes = [*self._sandboxes.values(), *self._unconfirmed.values()]
            markers = dict(self._markers)
        found = live_members(sandboxes, markers, weaker=self._weaker, since=self._since)
        return {worker_id: frozenset(pids) for worker_id, pids in found.items()}

    def live_workers(self) -> frozenset[str]:
        """Return the ids of the workers in :meth:`live_processes`."""
        return frozenset(self.live_processes())

    def _members(self, sandbox: Sandbox) -> set[int]:
        elsewhere = frozenset(
            s.pid_namespace
            for s in (*self._sandboxes.values(), *self._unconfirmed.values())
            if s.pid_namespace
        ) - {sandbox.pid_namespace}
        found = live_members([sandbox], weaker=self._weaker, since=self._since,
                             elsewhere=elsewhere)  # fmt: skip
        return found.get(sandbox.worker_id, set())

    def status(self, worker_id: str) -> WorkerStatus | None:
        """Return what the kernel says about a running container's worker (``None`` if none)."""
        with self._lock:
            sandbox = self._sandboxes.get(worker_id) or self._unconfirmed.get(worker_id)
            if sandbox is None:
                return None
            members = self._members(sandbox)
            usage = sandbox.cgroups.usage() if sandbox.cgroups is not None else None
            # The supervisor exits as soon as the worker's main process has (bwrap passes
            # its status on), but it learns both from the sandbox's init, which the worker
            # can rewrite: only the init's pidfd, the kernel's word, makes it final.
            exit_status = sandbox.supervisor.poll() if sandbox.exited else None
            state = "running" if exit_status is None else "exited"
            return WorkerStatus(
                worker_id=worker_id,
                state="kill_unconfirmed" if worker_id in self._unconfirmed else state,
                pid=sandbox.init,
                processes=len(members),
                memory_bytes=usage.memory_bytes if usage else None,
                tasks=usage.tasks if usage else None,
                isolation=self.isolation.describe(),
                exit_status=exit_status,
                missing_fences=self.isolation.missing,
            )

    def statuses(self) -> dict[str, WorkerStatus]:
        """Return the status of every running container's worker."""
        with self._lock:
            ids = sorted({*self._sandboxes, *self._unconfirmed})
            return {w: s for w in ids if (s := self.status(w)) is not None}

    def enforce_resource_bounds(self, worker_id: str) -> None:
        """Read the worker's real usage; kill it if it went over its bounds, saying why.

        Over its bounds means: the kernel's OOM killer fired in its memory
        cgroup (``memory_limit_exceeded``), a fork was refused at its process
        limit (``process_limit_exceeded``), or, without cgroups, its processes'
        resident memory or count exceeds the limits. Otherwise the seed's
        ``resource_enforced`` record is made (R-PROC-7).
        """
        with self._lock:
            breach = self._breach(worker_id)
        if breach is None:
            super().enforce_resource_bounds(worker_id)
            return
        reason, detail = breach
        self.logger.log("resource_bounds_exceeded", worker_id=worker_id, reason=reason,
                        detail=detail)  # fmt: skip
        self.kill_worker(worker_id, reason=reason)

    def _breach(self, worker_id: str) -> tuple[str, str] | None:
        sandbox = self._sandboxes.get(worker_id)
        record = self._state.containers.get(worker_id)
        if sandbox is None or record is None:
            return None
        limit = record.resources.memory_limit_mb * 1024 * 1024
        if sandbox.cgroups is not None:
            return cgroup_breach(sandbox.cgroups.usage(), limit, self.max_processes)
        return process_breach(self._members(sandbox), limit, self.max_processes)

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Kill every container still running, confirmed, and release what the backend holds.

        The kill is the seed's ``kill_all`` (reason ``orchestrator_closed``), so it
        is in the audit trail; if the kernel does not confirm every death, even
        after a retry, :class:`KillUnconfirmed` is raised naming the survivors,
        and their sandboxes stay held (and retried) rather than released.
        """
        with self._lock:
            if self._state.containers:
                self.kill_all("orchestrator_closed")
            survivors = self.retry_kills()
            if survivors:
                raise KillUnconfirmed(survivors)
            self._closed = True
            if self._watchdog is not None:
                self._watchdog.stop()
                self._watchdog = None
            if self._subreaping:
                self._subreaping = False
                subreaper.release()
            for parent in self._parents.values():
                with contextlib.suppress(OSError):
                    parent.rmdir()

    def __enter__(self) -> ProcessOrchestrator:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<ProcessOrchestrator containers={len(self._state.containers)} "
            f"{self.isolation.describe()}>"
        )


def _dirs(cgroups: CgroupSet | None) -> list[str]:
    return [str(directory) for directory in cgroups.directories] if cgroups else []
