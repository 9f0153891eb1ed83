"""One way to resolve a ``package.module[:attribute]`` argument, for every command.

A name given on the command line (an adapter, explored transitions, a
contract) is looked up as ``python -m`` and pytest look it up: in the current
directory, then on ``sys.path``. So a module in a file next to the user works
from the console script as well, whichever option names it. What the import
of the user's module raises is left to the caller, which knows how to report
it; a name that resolves to nothing is an :class:`UnresolvedNameError`.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from pathlib import Path
from typing import Any

__all__ = ["UnresolvedNameError", "resolve"]


class UnresolvedNameError(ValueError):
    """A ``module[:attribute]`` name that names nothing: which part, and where it was looked for."""


def _search_current_directory() -> None:
    """Put the current directory on ``sys.path``, as ``python -m`` does, if it is not there."""
    if str(Path.cwd()) not in sys.path and "" not in sys.path:
        sys.path.insert(0, str(Path.cwd()))


def resolve(reference: str) -> Any:
    """Return what ``"package.module"`` or ``"package.module:attribute.path"`` names.

    Raises :class:`UnresolvedNameError` when the top-level package or an attribute
    does not exist (with the closest name when there is one); anything the
    import itself raises (a syntax error, an exception in the module's code, a
    missing submodule) propagates as it was raised.
    """
    _search_current_directory()
    module_name, _, attribute = reference.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name.split(".", maxsplit=1)[0]:
            raise
        message = (
            f"cannot import {module_name}: no module named {error.name!r} "
            "(looked in the current directory and on sys.path)"
        )
        raise UnresolvedNameError(message) from None
    for part in filter(None, attribute.split(".")):
        if not hasattr(found, part):
            names = [name for name in dir(found) if not name.startswith("_")]
            close = difflib.get_close_matches(part, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            owner = getattr(found, "__name__", module_name)
            message = f"{owner} has no attribute {part!r}{hint}"
            raise UnresolvedNameError(message)
        found = getattr(found, part)
    return found
