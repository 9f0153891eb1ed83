"""The orchestrator's watchdog: when the orchestrator's process dies, its workers die with it.

``bwrap --die-with-parent`` ties each sandbox to the orchestrator through a
parent-death signal on the sandbox's init; but that init runs inside the
sandbox, as the worker's own uid, and is dumpable: a worker can rewrite its
memory through ``/proc/1/mem`` (neither ``ptrace`` nor ``process_vm_writev``
is needed) and clear the signal, so that the whole sandbox outlives a
SIGKILLed orchestrator (R-PROC-15). The watchdog is a fence the worker cannot
reach: a small process started by the orchestrator (root, on the host, in a
session of its own, in no worker's namespaces or cgroups) that blocks on
the read end of a pipe whose only write end the orchestrator holds. The kernel
closes that end however the orchestrator ends (``close()``, an exception, a
SIGKILL), and the watchdog then freezes, SIGKILLs and thaws every task in the
orchestrator's cgroup directories until none is left, and removes them.

This module runs as a script (``python -I -S watchdog.py VERSION DIR...``): it
imports nothing but the standard library, so that it starts fast and does not
depend on the orchestrator's environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

__all__ = ["Watchdog"]

#: How long the watchdog keeps killing before it gives up (a task in uninterruptible sleep).
_GIVE_UP_AFTER = 600.0


class Watchdog:
    """The orchestrator's end of a running watchdog: a pipe's write end and the child's pid."""

    def __init__(self, version: int, directories: list[Path]) -> None:
        """Start a watchdog over ``directories`` (cgroup ``version``); raise ``OSError`` if not."""
        read_end, self._write_end = os.pipe()  # both close-on-exec: no sandbox inherits them
        try:
            argv = [sys.executable, "-I", "-S", __file__, str(version), *map(str, directories)]
            self.pid = os.posix_spawn(
                sys.executable,
                argv,
                {},
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, read_end, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                ],
                # Its own session: a Ctrl-C or SIGHUP to the orchestrator's group spares it.
                setsid=True,
            )
        except OSError:
            os.close(self._write_end)
            raise
        finally:
            os.close(read_end)

    def stop(self, *, timeout: float = 10.0) -> None:
        """Close the pipe (the watchdog sweeps what is left, normally nothing) and reap it."""
        if self._write_end < 0:
            return
        os.close(self._write_end)
        self._write_end = -1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                done, _ = os.waitpid(self.pid, os.WNOHANG)
                if done == 0:
                    time.sleep(0.005)
                    continue
            return


def _groups(roots: list[Path]) -> list[Path]:
    """Every cgroup directory at or below ``roots``, parents before children."""
    found: list[Path] = []
    stack = [root for root in roots if root.is_dir()]
    while stack:
        directory = stack.pop()
        found.append(directory)
        with contextlib.suppress(OSError):
            stack.extend(
                Path(e.path) for e in os.scandir(directory) if e.is_dir(follow_symlinks=False)
            )
    return found


def _write(path: Path, value: str) -> None:
    with contextlib.suppress(OSError):
        path.write_text(value, encoding="ascii")


def _tasks(groups: list[Path]) -> set[int]:
    pids: set[int] = set()
    for group in groups:
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(p) for p in (group / "cgroup.procs").read_text("ascii").split())
    return pids


def sweep(version: int, roots: list[Path], *, give_up_after: float = _GIVE_UP_AFTER) -> int:
    """Freeze, SIGKILL and thaw every task under ``roots`` until none is left; remove them.

    Returns the number of signals sent.
    """
    frozen, thawed = ("FROZEN", "THAWED") if version == 1 else ("1", "0")
    state = "freezer.state" if version == 1 else "cgroup.freeze"
    deadline = time.monotonic() + give_up_after
    pause, sent = 0.005, 0
    while (groups := _groups(roots)) and time.monotonic() < deadline:
        # Frozen first, then read: a frozen task cannot exit, so its pid cannot be reused
        # by another process of the host before the SIGKILL lands.
        for group in groups:
            _write(group / state, frozen)
        pids = _tasks(groups)
        if pids and version == 2:
            for group in groups:
                _write(group / "cgroup.kill", "1")
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                sent += 1
        for group in groups:
            _write(group / state, thawed)
        if not pids:
            break
        time.sleep(pause)
        pause = min(pause * 2, 1.0)
    for group in reversed(_groups(roots)):
        with contextlib.suppress(OSError):
            group.rmdir()
    return sent


def main(arguments: list[str]) -> int:
    """Wait for the orchestrator's end of the pipe to close, then sweep its cgroups."""
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(number, signal.SIG_IGN)
    version, roots = int(arguments[0]), [Path(a) for a in arguments[1:]]
    while True:
        try:
            if not os.read(0, 4096):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    sweep(version, roots)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
