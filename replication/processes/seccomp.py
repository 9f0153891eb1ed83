"""The seccomp filter every sandboxed worker runs under: system calls a worker never needs.

The filter is built with libseccomp (through ``pyseccomp``, a ctypes binding
with the API of libseccomp's own Python module) and handed to bubblewrap as a
compiled BPF program (``bwrap --seccomp FD``). Its default action is to allow;
each listed call fails with ``EPERM`` (``clone3`` with ``ENOSYS``, so that the C
library falls back to ``clone``, whose namespace flags are then checked), and a
call made through another architecture's entry point (``int 0x80`` on x86-64)
kills the process, libseccomp's default for a foreign architecture.

The reference is Docker's default profile (moby ``profiles/seccomp/default.json``),
which is an allow list; this is a deny list of the calls that profile refuses to
a container without extra capabilities, plus the new mount API
(``fsopen``, ``fsmount``, ``move_mount``, ``open_tree``, ``fspick``,
``mount_setattr``), ``io_uring_*`` (refused by Docker since 2023) and
``ptrace``, ``process_vm_*``, ``kcmp`` and ``pidfd_getfd`` outright (Docker
allows ``ptrace`` on kernels from 4.8). specs/08-process-backend.md, R-PROC-11.
"""

from __future__ import annotations

import errno
import functools
import os
import platform
import tempfile

__all__ = [
    "DENIED_SYSCALLS",
    "NEWER_SYSCALLS",
    "SeccompUnavailable",
    "compiled_filter",
    "filter_fd",
]

#: Every call the filter refuses with ``EPERM``, by name.
DENIED_SYSCALLS = (
    # Mounts and namespaces: the fences themselves.
    "mount", "umount2", "pivot_root", "chroot", "unshare", "setns",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    # The kernel's own state and modules.
    "bpf", "perf_event_open", "kexec_load", "kexec_file_load", "init_module",
    "finit_module", "delete_module", "reboot", "swapon", "swapoff", "acct",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "syslog",
    "quotactl", "lookup_dcookie", "iopl", "ioperm", "uselib", "vhangup",
    "nfsservctl", "fanotify_init",
    # Keys, handles and other processes' memory.
    "keyctl", "add_key", "request_key", "open_by_handle_at", "name_to_handle_at",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "userfaultfd",
    # Asynchronous rings that bypass per-call filtering.
    "io_uring_setup", "io_uring_enter", "io_uring_register",
)  # fmt: skip

#: Calls newer than some libseccomp releases (2.5 knows no ``open_tree_attr``, Linux 6.15):
#: refused by number where the library cannot name them, on the architectures that share
#: the kernel's unified numbering of new calls (from 424 on).
NEWER_SYSCALLS = {"open_tree_attr": 467}
_UNIFIED_NUMBERING = frozenset({"x86_64", "aarch64"})

#: ``clone`` flags that make a namespace: refused (``unshare`` and ``setns`` are refused above).
_NAMESPACE_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)
#: Terminal ioctls that push input into another process's terminal.
_TIOCSTI = 0x5412
_TIOCLINUX = 0x541C
#: The part of a 64-bit argument that the kernel keeps when the call declares it an ``int``.
_LOW_32_BITS = 0xFFFF_FFFF


class SeccompUnavailable(RuntimeError):  # noqa: N818 - it names a state, like the backend's errors
    """libseccomp or its Python binding could not build the filter here."""


@functools.cache
def compiled_filter() -> bytes:
    """Return the filter as a BPF program (built once per process).

    Raises :class:`SeccompUnavailable` naming the cause where libseccomp is missing.
    """
    try:
        import pyseccomp as seccomp  # noqa: PLC0415 - only a sandboxing orchestrator needs it
    except (ImportError, OSError, RuntimeError) as error:
        message = f"the pyseccomp binding of libseccomp cannot be loaded ({error})"
        raise SeccompUnavailable(message) from error
    try:
        rules = seccomp.SyscallFilter(seccomp.ALLOW)
        deny = seccomp.ERRNO(errno.EPERM)
        for name in DENIED_SYSCALLS:
            rules.add_rule(deny, name)
        for name, number in NEWER_SYSCALLS.items():
            if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) >= 0:
                rules.add_rule(deny, name)
            elif platform.machine() in _UNIFIED_NUMBERING:
                rules.add_rule(deny, number)
        for bit in range(32):
            if _NAMESPACE_FLAGS & (1 << bit):
                rules.add_rule(deny, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, 1 << bit, 1 << bit))
        rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
        for request in (_TIOCSTI, _TIOCLINUX):
            # The kernel reads ioctl's request as a 32-bit int, the filter sees 64 bits: match
            # the low half only, or the request with a high bit set (0x1_0000_5412) slips past.
            rules.add_rule(deny, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, _LOW_32_BITS, request))
        with tempfile.TemporaryFile() as out:
            rules.export_bpf(out)
            out.seek(0)
            return out.read()
    except (OSError, RuntimeError, ValueError) as error:
        message = f"libseccomp refused to build the filter ({error})"
        raise SeccompUnavailable(message) from error


def filter_fd() -> int:
    """Return a new descriptor (memfd, close-on-exec) holding the filter, at offset 0.

    One per launch: bubblewrap reads it to its end, and a shared descriptor's
    offset would be shared by concurrent launches. The caller closes it.
    """
    program = compiled_filter()
    fd = os.memfd_create("replication-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(fd, program)
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd
