"""What isolation this machine grants: probed, never assumed.

:func:`probe_isolation` asks the kernel, by doing it: it starts ``unshare``
with a new PID and network namespace, looks for the cgroup controllers that
hold a worker's memory, process count and CPU, and tries to create (and
remove) a cgroup beside its own. The answer is an :class:`Isolation`: what is
granted, and a sentence for each thing that was refused. Full isolation is a
PID namespace, a network namespace and cgroup limits on memory and processes
(R-PROC-2); anything less is weaker, and the orchestrator runs with it only
when told to (R-PROC-3).
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

__all__ = [
    "CGROUP_CONTROLLERS",
    "REQUIRED_CONTROLLERS",
    "Isolation",
    "own_cgroups",
    "probe_isolation",
]

#: The controllers the backend uses: memory, process count, CPU.
CGROUP_CONTROLLERS = ("memory", "pids", "cpu")
#: The controllers full isolation needs (the CPU quota is enforced where present).
REQUIRED_CONTROLLERS = frozenset({"memory", "pids"})

#: Where cgroup hierarchies are mounted on every mainstream distribution.
_CGROUP_FS = Path("/sys/fs/cgroup")


@immutable
@attrs.frozen
class Isolation:
    """What the kernel grants a worker's sandbox on this machine.

    ``cgroups`` maps each usable controller to the directory under which the
    backend creates worker cgroups (with ``cgroup_version`` 1 or 2); ``refused``
    holds one sentence for each part of full isolation the kernel refused.
    """

    pid_namespace: bool
    network_namespace: bool
    cgroup_version: int | None
    cgroups: tuple[tuple[str, str], ...]
    refused: tuple[str, ...]
    unshare: str | None = None

    @property
    def controllers(self) -> frozenset[str]:
        """The cgroup controllers available for limits."""
        return frozenset(name for name, _ in self.cgroups)

    @property
    def full(self) -> bool:
        """PID and network namespaces, and cgroup limits on memory and processes."""
        return (
            self.pid_namespace
            and self.network_namespace
            and self.controllers >= REQUIRED_CONTROLLERS
        )

    @property
    def level(self) -> str:
        """``full`` or ``weaker`` (R-PROC-3)."""
        return "full" if self.full else "weaker"

    def describe(self) -> str:
        """One line naming every mechanism in force, for statuses and reports."""
        parts = []
        if self.pid_namespace:
            parts.append(
                "pid namespace" + (" + network namespace" if self.network_namespace else "")
            )
        else:
            parts.append("process group + child subreaper (no pid namespace)")
            if not self.network_namespace:
                parts.append("no network isolation")
        if self.controllers:
            names = ", ".join(sorted(self.controllers))
            parts.append(f"cgroup v{self.cgroup_version} limits: {names}")
        else:
            parts.append("no cgroup limits")
        return f"{self.level} isolation: {'; '.join(parts)}"

    def weakened(self, *, pid_namespace: bool, network_namespace: bool, cgroups: bool) -> Isolation:
        """Return this isolation with mechanisms switched off.

        For tests and demonstrations of the weaker path on a machine that grants everything.
        """
        refused = list(self.refused)
        if self.pid_namespace and not pid_namespace:
            refused.append("pid namespace: switched off by the caller")
        if self.network_namespace and not network_namespace:
            refused.append("network namespace: switched off by the caller")
        if self.cgroups and not cgroups:
            refused.append("cgroups: switched off by the caller")
        return attrs.evolve(
            self,
            pid_namespace=self.pid_namespace and pid_namespace,
            network_namespace=self.network_namespace and network_namespace,
            cgroup_version=self.cgroup_version if cgroups else None,
            cgroups=self.cgroups if cgroups else (),
            refused=tuple(refused),
        )


def probe_isolation(unshare: str | None = None) -> Isolation:
    """Ask the kernel what isolation it grants (a fresh probe each call; see :func:`cached`)."""
    refused: list[str] = []
    binary = unshare or shutil.which("unshare")
    pid_ns = net_ns = False
    if binary is None:
        refused.append("namespaces: the unshare command (util-linux) is not installed")
    else:
        pid_ns, net_ns = _probe_namespaces(binary, refused)
    version, cgroups = _probe_cgroups(refused)
    return Isolation(
        pid_namespace=pid_ns,
        network_namespace=net_ns,
        cgroup_version=version,
        cgroups=cgroups,
        refused=tuple(refused),
        unshare=binary if pid_ns else None,
    )


@functools.cache
def cached_isolation() -> Isolation:
    """Return the probe's answer, asked once per process (the kernel's does not change)."""
    return probe_isolation()


def _run(argv: list[str]) -> tuple[int, str]:
    try:
        done = subprocess.run(  # noqa: S603 - a fixed argv, no shell
            argv, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return -1, str(error)
    return done.returncode, done.stderr.strip()


def _probe_namespaces(binary: str, refused: list[str]) -> tuple[bool, bool]:
    true = shutil.which("true") or "/bin/true"
    code, error = _run([binary, "--pid", "--fork", "--kill-child", "--net", "--", true])
    if code == 0:
        return True, True
    code_pid, error_pid = _run([binary, "--pid", "--fork", "--kill-child", "--", true])
    if code_pid == 0:
        refused.append(f"network namespace: unshare --net failed ({error or code})")
        return True, False
    refused.append(f"pid namespace: unshare --pid failed ({error_pid or code_pid})")
    refused.append("network namespace: not attempted without a pid namespace")
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
