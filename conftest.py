"""Run the Python examples of README.md, specs/ and docs/ as tests (Sybil)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

if TYPE_CHECKING:
    import pytest

PARSERS = [PythonCodeBlockParser(), SkipParser()]


def _enter_a_scratch_directory(namespace: dict[str, Any]) -> None:
    """Run a tutorial's examples in a fresh temporary directory.

    They write files where a reader runs them, in the current directory.
    """
    scratch = tempfile.TemporaryDirectory(prefix="replication-tutorial-")
    namespace["__scratch__"] = (scratch, Path.cwd())
    os.chdir(scratch.name)


def _leave_the_scratch_directory(namespace: dict[str, Any]) -> None:
    """Go back where the tests ran, and remove the scratch directory."""
    scratch, previous = namespace.pop("__scratch__")
    os.chdir(previous)
    scratch.cleanup()


# docs/specs is specs/ itself (a link), whose examples run once, from there;
# the tutorials run in a scratch directory of their own.
pytest_collect_file = (
    Sybil(
        parsers=PARSERS,
        patterns=["README.md", "specs/*.md", "docs/*.md", "docs/*/*.md"],
        excludes=["docs/specs/*.md", "docs/tutorials/*.md"],
    )
    + Sybil(
        parsers=PARSERS,
        patterns=["docs/tutorials/*.md"],
        setup=_enter_a_scratch_directory,
        teardown=_leave_the_scratch_directory,
    )
).pytest()


#: The suite's heaviest files, heaviest first, as ``--durations`` measured them. They run
#: first: xdist hands out whole files (``--dist=loadfile``) in collection order
#: (``--no-loadscope-reorder``; its own order, by number of tests, put the slowest file of
#: eight tests late), so a run ends on short files instead of waiting on one of these.
HEAVY_FIRST = (
    "tests/test_conformance.py",
    "tests/test_wire_js.py",
    "tests/test_wire_errors.py",
    "tests/test_explore_tour.py",
    "tests/test_tutorials.py",
    "tests/test_docs.py",
    "tests/test_wire.py",
    "tests/test_journal_hosts.py",
    "properties/test_bad_input.py",
    "properties/test_reference_machine.py",
    "properties/test_signing_properties.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the items of :data:`HEAVY_FIRST`'s files first, keeping every other order."""
    rank = {name: number for number, name in enumerate(HEAVY_FIRST)}

    def heaviness(item: pytest.Item) -> int:
        path = item.path.relative_to(config.rootpath).as_posix()
        return rank.get(path, len(HEAVY_FIRST))

    items.sort(key=heaviness)
