"""The ``automodules`` directive: autodoc for every public module of a package.

The API reference lists modules by walking the package instead of naming each
one, so a module that is added, split or moved is documented without touching
the pages (other rooms move while the site is written).
"""

from __future__ import annotations

import importlib
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
            for line in (f"## `{name}`", "", "```{eval-rst}", f".. automodule:: {name}", "```", ""):
                lines.append(line, self.get_source_info()[0])
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, lines, container)
        return container.children


def setup(app: Sphinx) -> dict[str, object]:
    """Register the directive."""
    app.add_directive("automodules", AutoModules)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
