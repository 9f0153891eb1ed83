"""Progress of a run on stderr: examples, steps, witnesses reached, time, and the phase.

On a terminal one status line is rewritten in place a few times a second; into
a file or a pipe, a plain line is written every few seconds, so a CI log shows
the run advancing without drowning in it. ``--quiet`` turns it off. Writing a
line is all this needs, so no progress library is used.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, TextIO

from replication._text import counted

if TYPE_CHECKING:
    from replication.conformance.sequential.results import RunStats

__all__ = ["Progress"]


class Progress:
    """Writes the progress of a run to ``stream`` (stderr by default)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        required_witnesses: int = 0,
        interval: float | None = None,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.2 if self.tty else 5.0)
        self.required = required_witnesses
        self.started = time.monotonic()
        self.last = self.started
        self.planned = 0
        self.round = 1
        self.shrinking = False
        self.width = 0

    def _write(self, text: str, *, final: bool = False) -> None:
        if self.tty:
            padding = " " * max(0, self.width - len(text))
            self.stream.write(f"\r{text}{padding}" + ("\n" if final else ""))
            self.width = 0 if final else len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def begin_round(self, number: int, planned: int) -> None:
        """Start round ``number`` (``--keep-going``), which plans ``planned`` examples."""
        self.round, self.planned, self.shrinking = number, planned, False
        if number > 1:
            self._write(f"round {number}: searching on, with the divergences found set aside",
                        final=True)  # fmt: skip
        else:
            self._write(f"searching: 0/{planned:,} examples")

    def step(self, stats: RunStats) -> None:
        """Write a status line, when one is due (called after every step)."""
        now = time.monotonic()
        if stats.first_failure is not None and not self.shrinking:
            self.shrinking = True
            self._write(
                f"divergence found after {now - self.started:.1f} s "
                f"({counted(stats.examples_at_detection or 0, 'example')}): shrinking it",
                final=True,
            )
        if now - self.last < self.interval:
            return
        self.last = now
        reached = len(stats.witnesses.counts)
        phase = "shrinking" if self.shrinking else "searching"
        self._write(
            f"{phase}: {stats.examples:,}/{self.planned:,} examples, "
            f"{counted(stats.steps, 'step')}, {counted(reached, 'witness', 'witnesses')} reached, "
            f"{now - self.started:.0f} s"
        )

    def begin_histories(self, planned: int) -> None:
        """Start a concurrent run, which plans ``planned`` histories."""
        self.planned = planned
        self._write(f"concurrent: 0/{planned:,} histories")

    def histories(self, done: int, calls: int, *, failed: bool = False) -> None:
        """Write a status line of a concurrent run, when one is due (after every history).

        The last history's line is always written, and so is a failing one's.
        """
        now = time.monotonic()
        if now - self.last < self.interval and done < self.planned and not failed:
            return
        self.last = now
        self._write(
            f"concurrent: {done:,}/{self.planned:,} histories, {counted(calls, 'call')}, "
            f"{now - self.started:.0f} s"
        )

    def finish(self) -> None:
        """End the status line (on a terminal), so the report starts on a line of its own."""
        if self.tty and self.width:
            self._write("", final=True)
