"""Links into a linked folder of the site: ``docs/specs`` is ``specs/`` itself.

The specification chapters stay in ``specs/``, where the tests read them, and
``docs/specs`` is a symbolic link to that folder, so the site has a page per
chapter without a copy or a wrapper to keep in step. Sphinx reads pages
through the link, but resolves a Markdown link's path (``../specs/x.md``) to
the real file, outside the site's source, and then cannot find the page. This
extension maps such a target back to the page under the link.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sphinx import addnodes

if TYPE_CHECKING:
    from docutils import nodes
    from sphinx.application import Sphinx


def linked_folders(srcdir: Path) -> dict[str, str]:
    """Map the real path of each linked folder of the site to its name in the site."""
    return {
        (srcdir / entry.name).resolve().as_posix(): entry.name
        for entry in srcdir.iterdir()
        if entry.is_symlink() and entry.is_dir()
    }


def map_links(app: Sphinx, doctree: nodes.document) -> None:
    """Point each link to a real path under a linked folder at the page under the link."""
    folders = linked_folders(Path(app.srcdir))
    for node in doctree.findall(addnodes.pending_xref):
        if node.get("refdomain") != "doc":
            continue
        target = str(node["reftarget"])
        for real, name in folders.items():
            if target.startswith(f"{real}/"):
                node["reftarget"] = name + target.removeprefix(real)


def setup(app: Sphinx) -> dict[str, object]:
    """Register the handler."""
    app.connect("doctree-read", map_links)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
