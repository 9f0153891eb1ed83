"""What every command of ``replication`` shares: the usage error and the checks of its paths.

The top-level command line (:mod:`replication.cli`) and the rooms' commands
(:mod:`replication.explore.cli`, :mod:`replication.journal.cli`) import these;
this module imports none of them, so the commands depend on it one way.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["UsageError", "writable"]


class UsageError(Exception):
    """An option or a path the command cannot use: one line, exit code 2."""


def writable(path: str, option: str) -> Path:
    """Return ``path`` if a file can be written there, else raise :class:`UsageError`."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{option} {path}: is a directory, not a file")
    parent = target.parent if str(target.parent) else Path()
    if not parent.is_dir():
        raise UsageError(f"{option} {path}: the directory {parent} does not exist")
    if target.exists() and not os.access(target, os.W_OK):
        raise UsageError(f"{option} {path}: the file is not writable")
    if not target.exists() and not os.access(parent, os.W_OK):
        raise UsageError(f"{option} {path}: cannot create a file in {parent}")
    return target
