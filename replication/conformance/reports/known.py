"""Known divergences: a file of the ones an implementation has, set aside until fixed.

Like the xfail files of array-api-tests: one divergence per line, written as
the report prints it under ``--keep-going``::

    # my implementation's known divergences
    decision at register_worker: expected denied (replay) | got allowed

A run that meets a listed divergence sets it aside (it does not fail the run)
and searches on; a line that matched nothing in the run is reported as stale,
so the file shrinks as the implementation is fixed. A ``--strict`` run ignores
the file.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import attrs

from replication.conformance.adapters.preflight import SetupError

if TYPE_CHECKING:
    from collections.abc import Iterable
    from pathlib import Path

__all__ = ["KnownDivergences"]

_LINE = re.compile(
    r"^(?P<kind>\w+) at (?P<action>\w+): expected (?P<expected>.+?) \| got (?P<got>.+)$"
)


@attrs.frozen
class KnownDivergences:
    """The lines of a known-divergences file, each parsed into a divergence's signature."""

    path: str
    #: Each line, and the divergence it names: (kind, action, expected, got).
    entries: tuple[tuple[str, tuple[str, str, str, str]], ...]

    @property
    def signatures(self) -> frozenset[tuple[str, str, str, str]]:
        """The divergences the file names."""
        return frozenset(signature for _, signature in self.entries)

    @classmethod
    def load(cls, path: Path) -> KnownDivergences:
        """Read ``path``; raise :class:`SetupError` naming the line that does not parse."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            message = f"cannot read the known-divergences file {path}: {error.strerror}"
            raise SetupError(message) from None
        except UnicodeDecodeError:
            raise SetupError(f"the known-divergences file {path} is not UTF-8 text") from None
        entries = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            match = _LINE.match(line)
            if match is None:
                raise SetupError(
                    "a known divergence must read 'KIND at ACTION: expected X | got Y', "
                    f"as --keep-going prints it, got {line!r}",
                    where=f"{path}:{number}",
                )
            signature = (
                match["kind"],
                match["action"],
                match["expected"].strip(),
                match["got"].strip(),
            )
            entries.append((line, signature))
        return cls(str(path), tuple(entries))

    def stale(self, seen: Iterable[tuple[str, str, str, str]]) -> list[str]:
        """Return the lines that named no divergence met in the run."""
        met = set(seen)
        return [line for line, signature in self.entries if signature not in met]
