"""Reading a file a user points a command at: only a regular file, and only so much of it.

Every command that reads a path it was given (``journal verify|show|export``,
``journal snapshot``, ``trace check``, ``vectors check``, a ``--key`` PEM)
checks it here first, with ``os.stat`` (which follows a symlink to what it
names), before anything opens it: a FIFO would block the reader forever, a
device such as ``/dev/zero`` never ends, a directory is not a file. The file is
then opened non-blocking and checked again on the open descriptor, so that a
path swapped for a FIFO in between is refused too. What is read is bounded:
a whole file by :data:`MAX_FILE_BYTES`, a line by :data:`MAX_LINE_BYTES`, JSON
nesting and list lengths by the caller's own limits (:func:`check_shape`).
Each refusal is an :class:`InputFileError`, one line naming the path and what
it is (specs/07-journal.md, R-JOURNAL-15).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from replication.errors import ReplicationError

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_ITEMS",
    "MAX_LINE_BYTES",
    "InputFileError",
    "check_regular_file",
    "check_shape",
    "open_regular_file",
    "read_lines",
    "read_regular_file",
]

#: The most a whole-file reader reads: 16 MiB (the shipped vector files are under 30 KB).
MAX_FILE_BYTES = 16 * 1024 * 1024
#: The longest line a line reader accepts: 1 MiB (a step with a manifest is about 2 KB).
MAX_LINE_BYTES = 1024 * 1024
#: The most items one JSON list or object of an input file may hold.
MAX_ITEMS = 10_000

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class InputFileError(ReplicationError, ValueError):
    """A file a command was pointed at that it will not read: ``problem`` says why.

    Also a ``ValueError``: it is the input that is wrong.
    """

    def __init__(self, path: str, problem: str, *, line: int = 0) -> None:
        self.path = path
        self.problem = problem
        #: The line at fault (from 1), or 0 for the file as a whole.
        self.line = line
        super().__init__(f"{path}{f', line {line}' if line else ''}: {problem}")


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _refusal(path: str, mode: int) -> InputFileError:
    via = " (through a symlink)" if Path(path).is_symlink() else ""
    return InputFileError(path, f"is {_kind(mode)}{via}, not a regular file")


def check_regular_file(path: str, *, missing_ok: bool = False) -> bool:
    """Refuse anything but a regular file (a symlink to one is one); never open it.

    Returns whether the file exists; a missing file raises ``FileNotFoundError``
    unless ``missing_ok``.
    """
    try:
        status = Path(path).stat()
    except FileNotFoundError:
        if missing_ok:
            return False
        raise
    if not stat.S_ISREG(status.st_mode):
        raise _refusal(path, status.st_mode)
    return True


@contextlib.contextmanager
def open_regular_file(path: str) -> Iterator[BinaryIO]:
    """Open a regular file for reading in binary; refuse anything else without blocking."""
    check_regular_file(path)
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):  # swapped since it was checked
            raise _refusal(path, status.st_mode)
        os.set_blocking(descriptor, True)
        opened = os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise
    with opened:
        yield opened


def read_regular_file(path: str, *, limit: int = MAX_FILE_BYTES) -> bytes:
    """Read a whole regular file of at most ``limit`` bytes (else: file too large)."""
    with open_regular_file(path) as opened:
        data = opened.read(limit + 1)
    if len(data) > limit:
        raise InputFileError(path, f"file too large: more than {limit} bytes")
    return data


def read_lines(path: str, *, limit: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes]]:
    """Yield ``(number, line)`` of a regular file, each at most ``limit`` bytes.

    A longer line is refused (line too long): memory stays bounded by one
    line, however long the file.
    """
    with open_regular_file(path) as opened:
        number = 0
        while True:
            line = opened.readline(limit + 1)
            if not line:
                return
            number += 1
            if len(line) > limit:
                raise InputFileError(path, f"line too long: more than {limit} bytes", line=number)
            yield number, line


def check_shape(value: object, *, depth: int, items: int = MAX_ITEMS) -> str | None:
    """Why a parsed JSON value is too deep or too wide, or ``None``.

    ``depth`` bounds the nesting (nesting too deep), ``items`` the members of
    any one list or object (a list repeated thousands of times over is refused
    before anything iterates it).
    """
    pending = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if type(item) is dict:
            children = list(item.values())
        elif type(item) is list:
            children = item
        else:
            continue
        if len(children) > items:
            return f"a list or object of {len(children)} items (at most {items})"
        for child in children:
            if type(child) in {dict, list}:
                if level >= depth:
                    return f"nesting too deep: more than {depth} levels"
                pending.append((child, level + 1))
    return None
