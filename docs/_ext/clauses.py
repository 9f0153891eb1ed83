"""Clause ids as anchors: ``R-PROC-3`` and ``INV-DEPTH`` become link targets.

The specification defines a clause by a paragraph that opens with its bold id
and a colon (``**R-QUOTA-1**: ...``), and an invariant by a heading that is its
id (``### INV-DEPTH``); 00-overview.md, "How to read this specification". This
extension gives each definition its id as an HTML anchor (``#R-QUOTA-1``),
registers it as a label (``{ref}`R-QUOTA-1``` links to it from any page), makes
the bold id a link to itself (an address to copy), and turns every plain
mention of a defined id, on every page, into a link to its definition. An id
defined twice, or a mention of one that is not defined, is a warning, so
``-W`` fails the build.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from docutils import nodes
from sphinx.util import logging

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.environment import BuildEnvironment

LOGGER = logging.getLogger(__name__)
#: A clause or invariant id: upper-case words joined by hyphens, a clause's
#: ending in its number (R-QUOTA-1, PB-KILL-3, INV-NO-ORPHANS).
CLAUSE_ID = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+")
#: What a mention of a clause or an invariant looks like: one that names
#: nothing defined is a warning (a typo, or a clause renumbered under it).
MENTION = re.compile(r"(?<![\w-])(?:R-[A-Z]+(?:-[A-Z]+)*-\d+|INV-[A-Z]+(?:-[A-Z]+)*)(?![\w-])")
#: Where a mention is not turned into a link: code, links, headings, and the
#: definition itself.
NOT_LINKED = (nodes.literal, nodes.literal_block, nodes.reference, nodes.title, nodes.strong)


def _clauses(env: BuildEnvironment) -> dict[str, str]:
    """Return the defined ids and the document that defines each."""
    if not hasattr(env, "replication_clauses"):
        env.replication_clauses = {}  # type: ignore[attr-defined]
    return env.replication_clauses  # type: ignore[attr-defined,no-any-return]


def _definitions(doctree: nodes.document) -> list[tuple[str, nodes.Element]]:
    """Each clause paragraph and invariant section of a page, with its id."""
    found: list[tuple[str, nodes.Element]] = []
    for paragraph in doctree.findall(nodes.paragraph):
        # MyST may open a paragraph with an empty text node.
        children = [child for child in paragraph.children if child.astext()]
        if not children or not isinstance(children[0], nodes.strong):
            continue
        name = children[0].astext()
        after = children[1].astext() if len(children) > 1 else ""
        if CLAUSE_ID.fullmatch(name) and name[-1].isdigit() and after.startswith(":"):
            found.append((name, paragraph))
    for section in doctree.findall(nodes.section):
        if not section.children or not isinstance(section[0], nodes.title):
            continue
        name = section[0].astext()
        if name.startswith("INV-") and CLAUSE_ID.fullmatch(name):
            found.append((name, section))
    return found


def record_definitions(app: Sphinx, doctree: nodes.document) -> None:
    """Give every definition of the page its anchor and its label."""
    env = app.env
    clauses = _clauses(env)
    labels = env.domains.standard_domain.labels
    anonlabels = env.domains.standard_domain.anonlabels
    for name, node in _definitions(doctree):
        if name in clauses and clauses[name] != env.docname:
            LOGGER.warning(
                "clause %s is defined in %s and again here", name, clauses[name], location=node
            )
            continue
        clauses[name] = env.docname
        if name not in node["ids"]:
            node["ids"].insert(0, name)
        if isinstance(node, nodes.paragraph):
            # The bold id links to itself, so a reader can copy the clause's address.
            strong = next(child for child in node.children if isinstance(child, nodes.strong))
            strong.children = []
            strong += nodes.reference(name, name, internal=True, refid=name)
        # Sphinx's {ref} role looks labels up in lower case.
        labels[name.lower()] = (env.docname, name, name)
        anonlabels[name.lower()] = (env.docname, name)


def purge(_app: Sphinx, env: BuildEnvironment, docname: str) -> None:
    """Forget the ids of a page that is read again."""
    clauses = _clauses(env)
    for name in [name for name, where in clauses.items() if where == docname]:
        del clauses[name]


def merge(
    _app: Sphinx, env: BuildEnvironment, _docnames: set[str], other: BuildEnvironment
) -> None:
    """Take the ids that a parallel reader found."""
    _clauses(env).update(_clauses(other))


def link_mentions(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    """Turn each plain mention of a defined id into a link to its definition."""
    clauses = _clauses(app.env)
    if not clauses:
        return
    # The look-arounds keep R-KIT-1 from matching inside R-KIT-10 or R-KIT-1a.
    names = "|".join(sorted(map(re.escape, clauses), key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w-])({names})(?![\w-])")
    for text in list(doctree.findall(nodes.Text)):
        parent = text.parent
        if parent is None or any(
            isinstance(ancestor, NOT_LINKED) for ancestor in _ancestors(parent)
        ):
            continue
        for unknown in set(MENTION.findall(str(text))) - set(clauses):
            LOGGER.warning("%s names no clause of the specification", unknown, location=parent)
        pieces = pattern.split(str(text))
        if len(pieces) == 1:
            continue
        replacement: list[nodes.Node] = []
        for index, piece in enumerate(pieces):
            if index % 2 == 0:
                if piece:
                    replacement.append(nodes.Text(piece))
                continue
            target = clauses[piece]
            uri = "" if target == docname else app.builder.get_relative_uri(docname, target)
            replacement.append(
                nodes.reference(piece, piece, internal=True, refuri=f"{uri}#{piece}")
            )
        parent.replace(text, replacement)


def _ancestors(node: nodes.Node) -> list[Any]:
    found = []
    while node is not None:
        found.append(node)
        node = node.parent
    return found


def setup(app: Sphinx) -> dict[str, object]:
    """Register the event handlers."""
    app.connect("doctree-read", record_definitions)
    app.connect("env-purge-doc", purge)
    app.connect("env-merge-info", merge)
    app.connect("doctree-resolved", link_mentions)
    return {"parallel_read_safe": True, "parallel_write_safe": True, "env_version": 1}
