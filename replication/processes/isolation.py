"""What isolation this machine grants: probed, never assumed.

:func:`probe_isolation` asks the kernel, by doing it: it starts a bubblewrap
sandbox as an unprivileged uid (user, PID, network, mount, IPC, UTS and cgroup
namespaces) with the seccomp filter installed, looks for the cgroup
controllers that hold a worker's memory, process count, CPU and freezing, and
tries to create (and remove) a cgroup beside its own. The answer is an
:class:`Isolation`: what is granted, the fences that are missing, and a
sentence for each refusal. Full isolation is every fence (R-PROC-10); anything
less is weaker, and the orchestrator runs with it only when told to
(R-PROC-3), naming each missing fence wherever it reports.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

import attrs
import psutil

from replication._validation import immutable
from replication.processes.fences import SANDBOX_UID_BASE, bwrap_argv
from replication.processes.seccomp import DENIED_SYSCALLS, SeccompUnavailable, filter_fd

__all__ = [
    "CGROUP_CONTROLLERS",
    "REQUIRED_CONTROLLERS",
    "Isolation",
    "own_cgroups",
    "probe_isolation",
]

#: The controllers the backend uses: memory, process count, CPU, freezer (v1).
CGROUP_CONTROLLERS = ("memory", "pids", "cpu", "freezer")
#: The controllers full isolation needs (the CPU quota is enforced where present;
#: the freezer is required under v1, where it is a controller: v2 has it built in).
REQUIRED_CONTROLLERS = frozenset({"memory", "pids"})

#: Where cgroup hierarchies are mounted on every mainstream distribution.
_CGROUP_FS = Path("/sys/fs/cgroup")
#: The uid the probe's sandbox runs as (below the workers' own).
_PROBE_UID = SANDBOX_UID_BASE - 1


@immutable
@attrs.frozen
class Isolation:
    """What the kernel grants a worker's sandbox on this machine.

    ``bwrap`` is the bubblewrap binary when it could make a sandbox with a user
    namespace (root inside, an unprivileged uid outside) and PID and network
    namespaces; ``seccomp`` whether the filter was installed in it; ``cgroups``
    maps each usable controller to the directory under which the backend
    creates worker cgroups (with ``cgroup_version`` 1 or 2); ``refused`` holds
    one sentence for each part of full isolation the kernel refused.
    """

    pid_namespace: bool
    network_namespace: bool
    cgroup_version: int | None
    cgroups: tuple[tuple[str, str], ...]
    refused: tuple[str, ...]
    user_namespace: bool = False
    seccomp: bool = False
    bwrap: str | None = None
    setpriv: str | None = None

    @property
    def controllers(self) -> frozenset[str]:
        """The cgroup controllers available for limits."""
        return frozenset(name for name, _ in self.cgroups)

    @property
    def freezer(self) -> bool:
        """Whether a worker's cgroup can be frozen (v1 controller, v2 ``cgroup.freeze``)."""
        return self.cgroup_version == 2 or "freezer" in self.controllers

    @property
    def missing(self) -> tuple[str, ...]:
        """The name of each fence of full isolation that is not in force."""
        fences = {
            "bubblewrap sandbox": self.bwrap is not None,
            "user namespace (unprivileged host uid)": self.user_namespace,
            "pid namespace": self.pid_namespace,
            "network namespace": self.network_namespace,
            "seccomp filter": self.seccomp,
            "cgroup limits on memory and processes": self.controllers >= REQUIRED_CONTROLLERS,
            "cgroup freezer": self.freezer,
            # The watchdog kills through the cgroups: without them, only the parent-death
            # signal ties workers to the orchestrator, and a worker can clear it (R-PROC-15).
            "orchestrator watchdog": bool(self.controllers),
        }
        return tuple(name for name, present in fences.items() if not present)

    @property
    def full(self) -> bool:
        """Every fence: bubblewrap with user, PID and network namespaces, seccomp, cgroups."""
        return not self.missing

    @property
    def level(self) -> str:
        """``full`` or ``weaker`` (R-PROC-3)."""
        return "full" if self.full else "weaker"

    def describe(self) -> str:
        """One line naming every fence in force and every fence missing, for statuses."""
        parts = []
        if self.bwrap is not None and self.pid_namespace:
            namespaces = "user, pid, mount, ipc, uts, cgroup" + (
                ", network" if self.network_namespace else ""
            )
            parts.append(
                f"bubblewrap sandbox ({namespaces} namespaces; root inside, an unprivileged "
                "uid outside; no capabilities; no_new_privs; own session; dies with the "
                "orchestrator)"
            )
            if self.seccomp:
                parts.append(f"seccomp filter ({len(DENIED_SYSCALLS)} calls refused)")
        else:
            parts.append("process group + child subreaper (no pid namespace)")
        if self.controllers:
            names = ", ".join(sorted(self.controllers))
            parts.append(f"cgroup v{self.cgroup_version} limits out of the worker's reach: {names}")
        else:
            parts.append("no cgroup limits")
        text = f"{self.level} isolation: {'; '.join(parts)}"
        if self.missing:
            text += f"; MISSING: {', '.join(self.missing)}"
        return text

    def weakened(
        self, *, pid_namespace: bool, network_namespace: bool, cgroups: bool, seccomp: bool = True
    ) -> Isolation:
        """Return this isolation with fences switched off.

        For tests and demonstrations of the weaker path on a machine that grants
        everything. Without a PID namespace no sandbox is made at all (the
        process group path); without seccomp the sandbox runs unfiltered.
        """
        refused = list(self.refused)
        if self.pid_namespace and not pid_namespace:
            refused.append("pid namespace (and bubblewrap): switched off by the caller")
        if self.network_namespace and not network_namespace:
            refused.append("network namespace: switched off by the caller")
        if self.cgroups and not cgroups:
            refused.append("cgroups: switched off by the caller")
        if self.seccomp and not seccomp:
            refused.append("seccomp filter: switched off by the caller")
        sandboxed = self.pid_namespace and pid_namespace
        return attrs.evolve(
            self,
            pid_namespace=sandboxed,
            network_namespace=self.network_namespace and network_namespace and sandboxed,
            user_namespace=self.user_namespace and sandboxed,
            seccomp=self.seccomp and seccomp and sandboxed,
            bwrap=self.bwrap if sandboxed else None,
            cgroup_version=self.cgroup_version if cgroups else None,
            cgroups=self.cgroups if cgroups else (),
            refused=tuple(refused),
        )


def probe_isolation(bwrap: str | None = None) -> Isolation:
    """Ask the kernel what isolation it grants (a fresh probe each call; see :func:`cached`)."""
    refused: list[str] = []
    binary = bwrap or shutil.which("bwrap")
    setpriv = shutil.which("setpriv") if os.geteuid() == 0 else None
    namespaces = seccomp = False
    if binary is None:
        refused.append("bubblewrap: the bwrap command is not installed (Debian package bubblewrap)")
    elif os.geteuid() == 0 and setpriv is None:
        refused.append("user namespace: the setpriv command (util-linux) is not installed")
    else:
        namespaces, seccomp = _probe_sandbox(binary, setpriv, refused)
    version, cgroups = _probe_cgroups(refused)
    return Isolation(
        pid_namespace=namespaces,
        network_namespace=namespaces,
        user_namespace=namespaces,
        seccomp=seccomp,
        cgroup_version=version,
        cgroups=cgroups,
        refused=tuple(refused),
        bwrap=binary if namespaces else None,
        setpriv=setpriv,
    )


@functools.cache
def cached_isolation() -> Isolation:
    """Return the probe's answer, asked once per process (the kernel's does not change)."""
    return probe_isolation()


def _run(argv: list[str], pass_fds: tuple[int, ...] = ()) -> tuple[int, str]:
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argv, no shell
            argv, capture_output=True, text=True, timeout=10, check=False, pass_fds=pass_fds
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return -1, str(error)
    return done.returncode, done.stderr.strip()


def _probe_sandbox(binary: str, setpriv: str | None, refused: list[str]) -> tuple[bool, bool]:
    """Start ``true`` in a sandbox with every namespace, with then without the seccomp filter."""
    true = "/bin/true" if Path("/bin/true").exists() else "/usr/bin/true"

    def attempt(fd: int | None) -> tuple[int, str]:
        argv = bwrap_argv(bwrap=binary, setpriv=setpriv, uid=_PROBE_UID, network=False,
                          seccomp_fd=fd, read_only=(), argv=[true])  # fmt: skip
        return _run(argv, () if fd is None else (fd,))

    try:
        fd: int | None = filter_fd()
    except (SeccompUnavailable, OSError) as problem:
        refused.append(f"seccomp filter: {problem}")
        fd = None
    try:
        code, stderr = attempt(fd)
    finally:
        if fd is not None:
            os.close(fd)
    if code == 0:
        return True, fd is not None
    if fd is not None:
        code_plain, stderr_plain = attempt(None)
        if code_plain == 0:
            refused.append(f"seccomp filter: bwrap --seccomp failed ({stderr or code})")
            return True, False
        stderr = stderr_plain or stderr
    refused.append(
        f"user namespace: bwrap --unshare-all as an unprivileged uid failed ({stderr or code})"
    )
    return False, False


def own_cgroups() -> dict[str, str]:
    """Return this process's cgroup path in each v1 controller, and ``""`` -> its v2 path."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _probe_cgroups(refused: list[str]) -> tuple[int | None, tuple[tuple[str, str], ...]]:
    try:
        mounts = psutil.disk_partitions(all=True)
        own = own_cgroups()
    except OSError as error:
        refused.append(f"cgroups: cannot read the mounts or /proc/self/cgroup ({error})")
        return None, ()
    v1: dict[str, Path] = {}
    v2: Path | None = None
    for mount in mounts:
        options = set(mount.opts.split(","))
        if mount.fstype == "cgroup":
            for controller in CGROUP_CONTROLLERS:
                if controller in options and controller in own:
                    v1[controller] = Path(mount.mountpoint) / own[controller].lstrip("/")
        elif mount.fstype == "cgroup2" and "" in own and Path(mount.mountpoint) == _CGROUP_FS:
            v2 = Path(mount.mountpoint) / own[""].lstrip("/")
    if v1.keys() >= REQUIRED_CONTROLLERS:
        usable = {name: base for name, base in v1.items() if _can_create_under(base, refused)}
        if usable.keys() >= REQUIRED_CONTROLLERS:
            return 1, tuple(sorted((name, str(base)) for name, base in usable.items()))
        return None, ()
    if v2 is not None:
        return _probe_v2(v2, refused)
    refused.append("cgroups: no memory and pids controllers are mounted (v1 or v2)")
    return None, ()


def _probe_v2(base: Path, refused: list[str]) -> tuple[int | None, tuple[tuple[str, str], ...]]:
    try:
        available = set((base / "cgroup.controllers").read_text(encoding="utf-8").split())
    except OSError as error:
        refused.append(f"cgroups: cannot read {base}/cgroup.controllers ({error})")
        return None, ()
    wanted = [name for name in CGROUP_CONTROLLERS if name in available]
    if not set(wanted) >= REQUIRED_CONTROLLERS:
        refused.append(f"cgroups: v2 at {base} does not delegate memory and pids ({available})")
        return None, ()
    try:
        (base / "cgroup.subtree_control").write_text(
            " ".join(f"+{name}" for name in wanted), encoding="utf-8"
        )
    except OSError as error:
        refused.append(
            f"cgroups: cannot enable {wanted} below {base} ({error}); cgroup v2 forbids "
            "controllers below a group that holds processes: run the orchestrator in a "
            "delegated group of its own"
        )
        return None, ()
    if not _can_create_under(base, refused):
        return None, ()
    return 2, tuple((name, str(base)) for name in wanted)


def _can_create_under(base: Path, refused: list[str]) -> bool:
    probe = base / f"replication-probe-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as error:
        refused.append(f"cgroups: cannot create a cgroup under {base} ({error})")
        return False
    return True


def cgroup_roots(isolation: Isolation) -> dict[str, str]:
    """Return the mount point of each controller ``isolation`` uses (for the orphan sweep)."""
    roots: dict[str, str] = {}
    try:
        mounts = psutil.disk_partitions(all=True)
    except OSError:
        return roots
    for mount in mounts:
        options = set(mount.opts.split(","))
        for controller in isolation.controllers:
            if isolation.cgroup_version == 1 and mount.fstype == "cgroup" and controller in options:
                roots[controller] = mount.mountpoint
            elif isolation.cgroup_version == 2 and mount.fstype == "cgroup2":
                roots.setdefault(controller, mount.mountpoint)
    return roots
