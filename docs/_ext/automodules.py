"""The ``automodules`` directive: autodoc for every public module of a package.

The API reference lists modules by walking the package instead of naming each
one, so a module that is added, split or moved is documented without touching
the pages. Each object is documented once: in the public module that defines
it, or for one defined in a private module (``_issuing.py``), in the public
module that re-exports it from there (``transitions.py``).
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import pkgutil
from typing import TYPE_CHECKING, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

if TYPE_CHECKING:
    from sphinx.application import Sphinx


def public_modules(package: str, *, recursive: bool) -> list[str]:
    """Return the importable, public (no leading underscore) modules under ``package``."""
    module = importlib.import_module(package)
    found = []
    for info in pkgutil.iter_modules(module.__path__, prefix=f"{package}."):
        leaf = info.name.rsplit(".", 1)[1]
        if leaf.startswith("_"):
            continue
        if info.ispkg:
            if recursive:
                found.extend([info.name, *public_modules(info.name, recursive=True)])
            continue
        found.append(info.name)
    return found


def _is_private(name: str) -> bool:
    return any(part.startswith("_") for part in name.split(".")[1:])


def _imports_from(module_name: str) -> set[str]:
    """Return the modules that ``module_name``'s source imports names from."""
    source = inspect.getsource(importlib.import_module(module_name))
    return {
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    }


@functools.cache
def re_exports(root: str) -> dict[str, list[str]]:
    """Return, for each public module under ``root``, the names it documents for a private one.

    A name defined in a private module (``replication._issuing``) and listed in
    public modules' ``__all__`` (``replication.transitions``) is documented
    once: in the module that imports it from the private module itself, so
    that a module keeping an older import path (``replication.contract``, which
    takes its names from ``replication.model``) does not document it again.
    """
    candidates: dict[tuple[str, str], list[str]] = {}
    for name in public_modules(root, recursive=True):
        module = importlib.import_module(name)
        for attribute in getattr(module, "__all__", ()):
            value = getattr(module, attribute, None)
            # Only classes and functions know where they were defined (an
            # instance's __module__ is its class's).
            if not (inspect.isclass(value) or inspect.isfunction(value)):
                continue
            home = value.__module__
            if home.startswith(f"{root}.") and home != name and _is_private(home):
                candidates.setdefault((home, attribute), []).append(name)
    owned: dict[str, list[str]] = {}
    for (home, attribute), modules in sorted(candidates.items()):
        direct = [name for name in modules if home in _imports_from(name)]
        owned.setdefault((direct or modules)[0], []).append(attribute)
    return owned


def _directive_for(module_name: str, attribute: str) -> str:
    value = getattr(importlib.import_module(module_name), attribute)
    return "autoclass" if inspect.isclass(value) else "autofunction"


class AutoModules(SphinxDirective):
    """One section per public module of the package named by the argument.

    ``:recursive:`` takes the sub-packages too; ``:exclude:`` lists modules
    (and with them their sub-modules) documented elsewhere or not at all.
    """

    required_arguments = 1
    option_spec: ClassVar[dict[str, object]] = {  # type: ignore[misc]
        "recursive": directives.flag,
        "exclude": directives.unchanged,
    }

    def run(self) -> list[nodes.Node]:
        """Document each module in a section of its own."""
        package = self.arguments[0]
        excluded = self.options.get("exclude", "").split()
        lines = StringList()
        for name in public_modules(package, recursive="recursive" in self.options):
            if any(name == skip or name.startswith(f"{skip}.") for skip in excluded):
                continue
            # The page is MyST Markdown, so the generated text is too; autodoc
            # writes reStructuredText, which MyST reads in an eval-rst block.
            rst = [f".. automodule:: {name}", ""]
            for attribute in re_exports(package.split(".")[0]).get(name, []):
                rst += [f".. {_directive_for(name, attribute)}:: {name}.{attribute}", ""]
            for line in (f"## `{name}`", "", "```{eval-rst}", *rst, "```", ""):
                lines.append(line, self.get_source_info()[0])
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, lines, container)
        return container.children


def setup(app: Sphinx) -> dict[str, object]:
    """Register the directive."""
    app.add_directive("automodules", AutoModules)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
