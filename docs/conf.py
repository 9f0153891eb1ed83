"""Sphinx configuration of the documentation site (``sphinx-build -W docs <out>``).

The pages are MyST Markdown; the specification chapters are included from
``specs/`` unchanged, and the API reference is read from the docstrings.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The local extensions (clause anchors, the API pages' module lists), and the
# package itself when the docs are built from a checkout that is not installed.
sys.path[:0] = [str(HERE / "_ext"), str(HERE.parent)]

from replication import __version__  # noqa: E402 - needs the path above

project = "replication"
author = "replication developers"
copyright = "replication developers"  # noqa: A001 - Sphinx's own setting name
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinxcontrib.mermaid",
    "clauses",
    "automodules",
    "linked_sources",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "**/README.md"]

# MyST: heading anchors for [text](page.md#heading) links, definition lists
# and fenced directives.
myst_heading_anchors = 4
myst_enable_extensions = ["colon_fence", "deflist"]
# The specs draw state diagrams in ```mermaid fences (GitHub renders them too).
myst_fence_as_directive = ["mermaid"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Each object is documented once, in the module that defines it: a module that
# re-exports a name in its __all__ (replication.contract keeps the older import
# paths) would otherwise document it a second time.
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}

# A type named in an annotation imported only for type checking stays a bare
# name (``Step``); where two modules define that name, Sphinx links the first
# and warns. Every other warning (a broken link, a missing page, a clause
# defined twice) still fails the build.
suppress_warnings = ["ref.python"]

html_theme = "furo"
html_title = f"replication {__version__}"
