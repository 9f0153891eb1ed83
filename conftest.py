"""Run the Python examples of README.md, specs/ and docs/ as tests (Sybil)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

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
