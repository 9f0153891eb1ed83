"""The specification under specs/ and the tests agree, both ways.

Every clause the specification defines is cited by a test, a property or an
invariant; every citation names a clause that exists; every reason code and
every invariant is the subject of some clause; the documents come in their
fixed order; every Python block in them runs (none skipped); and the lifecycle
diagram names only real transitions, and all of those that act on the whole
state.
"""

from __future__ import annotations

import inspect
import io
import re
import subprocess
import sys
import tokenize
from collections import Counter
from functools import cache
from pathlib import Path

from replication import transitions
from replication.errors import ReasonCode
from replication.invariants import INVARIANTS

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
ORDER = (
    "00-overview.md",
    "01-transitions.md",
    "02-invariants.md",
    "03-manifest-format.md",
    "04-conformance.md",
    "05-vectors.md",
    "06-exploration.md",
    "07-journal.md",
    "08-process-backend.md",
    "09-wire-protocol.md",
)

#: A clause is defined by a paragraph opening with its bold identifier and a colon.
DEFINITION = re.compile(r"^\*\*(R-[A-Z]+-\d+)\*\*:")
IDENTIFIER = re.compile(r"\bR-[A-Z]+-\d+\b")
HEADING = re.compile(r"^#{1,6} ")
FENCE = re.compile(r"^(`{3,}|~{3,})(.*)$")
#: Sybil directives in HTML comments (skip, invisible code, namespace clearing).
DIRECTIVE = re.compile(r"<!--+\s*(?:;\s*)?(skip|invisible-code|code-block|clear-namespace)")


def spec_paths() -> list[Path]:
    return [SPECS / name for name in ORDER]


def citing_paths() -> list[Path]:
    """Where citations live: tests, properties and the invariant catalogue (not this file)."""
    paths = [*ROOT.glob("tests/*.py"), *ROOT.glob("properties/*.py")]
    paths.append(ROOT / "replication" / "invariants.py")
    return sorted(path for path in paths if path.resolve() != Path(__file__).resolve())


def code_blocks(text: str) -> list[tuple[str, str]]:
    """Return every fenced code block of a Markdown text as (info string, content)."""
    blocks = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        fence, info = opening.group(1), opening.group(2).strip()
        content = []
        index += 1
        while index < len(lines) and not lines[index].startswith(fence):
            content.append(lines[index])
            index += 1
        blocks.append((info, "\n".join(content)))
        index += 1
    return blocks


@cache
def clauses() -> dict[str, tuple[str, str]]:
    """Return every clause as id -> (file name, text).

    A clause runs from its definition to the next definition or heading; code
    blocks inside that span are examples and are left out of its text.
    """
    found: dict[str, tuple[str, str]] = {}
    duplicates = []
    for path in spec_paths():
        current: str | None = None
        body: list[str] = []
        in_code = ""
        for line in [*path.read_text(encoding="utf-8").splitlines(), "# end"]:
            fence = FENCE.match(line)
            if in_code:
                if fence and line.startswith(in_code):
                    in_code = ""
                continue
            if fence:
                in_code = fence.group(1)
                continue
            definition = DEFINITION.match(line)
            if definition or HEADING.match(line):
                if current is not None:
                    if current in found:
                        duplicates.append(current)
                    found[current] = (path.name, "\n".join(body))
                current, body = (definition.group(1), [line]) if definition else (None, [])
            elif current is not None:
                body.append(line)
    assert not duplicates, f"clauses defined more than once: {sorted(duplicates)}"
    return found


@cache
def citations() -> dict[str, set[str]]:
    """Return every clause id cited in a comment or docstring -> the files citing it."""
    cited: dict[str, set[str]] = {}
    for path in citing_paths():
        source = path.read_text(encoding="utf-8")
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type in {tokenize.COMMENT, tokenize.STRING}:
                for identifier in IDENTIFIER.findall(token.string):
                    cited.setdefault(identifier, set()).add(path.relative_to(ROOT).as_posix())
    return cited


class TestDocuments:
    def test_the_documents_exist_in_their_fixed_order(self):
        present = sorted(path.name for path in SPECS.glob("*.md"))
        assert present == list(ORDER), f"specs/ must hold exactly {list(ORDER)}, has {present}"
        # Numbers are reserved per room (06 the explorer's, 07 the journal's), so a
        # branch may hold a later document before an earlier one lands: increasing
        # and unique, not necessarily consecutive.
        numbers = [int(name[:2]) for name in ORDER]
        assert numbers == sorted(set(numbers)), f"{list(ORDER)} are not numbered in order"
        assert all(name[2] == "-" for name in ORDER)

    def test_every_document_defines_clauses(self):
        files = Counter(name for name, _ in clauses().values())
        empty = [name for name in ORDER if not files[name]]
        assert not empty, f"documents without a single clause: {empty}"

    def test_every_clause_uses_an_rfc_2119_keyword(self):
        keyword = re.compile(r"\b(MUST|MUST NOT|SHOULD|SHOULD NOT|MAY)\b")
        weak = sorted(cid for cid, (_, text) in clauses().items() if not keyword.search(text))
        assert not weak, f"clauses without MUST, SHOULD or MAY: {weak}"


class TestCitations:
    def test_every_clause_is_cited_by_a_test_property_or_invariant(self):
        uncited = sorted(set(clauses()) - set(citations()))
        assert not uncited, (
            f"clauses no test cites (add the id to a test's docstring or a `# Spec:` comment "
            f"in tests/, properties/ or replication/invariants.py): {uncited}"
        )

    def test_every_citation_names_a_clause_that_exists(self):
        dangling = {
            identifier: sorted(files)
            for identifier, files in citations().items()
            if identifier not in clauses()
        }
        assert not dangling, f"citations of clauses the specification does not define: {dangling}"

    def test_every_reference_inside_the_specification_names_a_clause(self):
        mentioned = {
            path.name: set(IDENTIFIER.findall(path.read_text(encoding="utf-8")))
            for path in spec_paths()
        }
        dangling = {name: sorted(ids - set(clauses())) for name, ids in mentioned.items()}
        dangling = {name: ids for name, ids in dangling.items() if ids}
        assert not dangling, f"references to undefined clauses: {dangling}"


class TestCoverage:
    def test_every_reason_code_is_the_subject_of_a_clause(self):
        text = "\n".join(body for _, body in clauses().values())
        missing = sorted(code.value for code in ReasonCode if f"`{code.value}`" not in text)
        assert not missing, f"reason codes no clause mentions (as `code`): {missing}"

    def test_every_invariant_is_the_subject_of_a_clause(self):
        text = "\n".join(body for _, body in clauses().values())
        missing = [inv.id for inv in INVARIANTS if not re.search(rf"\b{inv.id}\b", text)]
        assert not missing, f"invariants no clause mentions: {missing}"

    def test_the_invariant_catalogue_is_stated_verbatim_in_its_order(self):
        text = (SPECS / "02-invariants.md").read_text(encoding="utf-8")
        headings = re.findall(r"^### (INV-[A-Z-]+)$", text, flags=re.MULTILINE)
        assert headings == [inv.id for inv in INVARIANTS], "02-invariants.md: catalogue order"
        misquoted = [inv.id for inv in INVARIANTS if f"Statement: {inv.statement}" not in text]
        assert not misquoted, f"02-invariants.md misquotes the statements of {misquoted}"


def python_blocks(path: Path) -> list[str]:
    return [content for info, content in code_blocks(path.read_text(encoding="utf-8"))
            if info == "python"]  # fmt: skip


class TestExamples:
    def test_no_example_can_be_skipped(self):
        for path in spec_paths():
            directives = DIRECTIVE.findall(path.read_text(encoding="utf-8"))
            assert not directives, f"{path.name} uses Sybil directives {directives}"

    def test_every_example_asserts_something(self):
        for path in spec_paths():
            for number, block in enumerate(python_blocks(path)):
                assert "assert" in block, f"{path.name}: python block {number} asserts nothing"

    def test_sybil_collects_every_python_block(self):
        """Each ```python block is one Sybil example in pytest's collection, none lost."""
        expected = {path.name: len(python_blocks(path)) for path in spec_paths()}
        assert sum(expected.values()) >= len(ORDER)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "specs", "--collect-only", "-q",
             "-p", "no:cacheprovider"],
            capture_output=True, text=True, check=False, cwd=ROOT,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        items = re.findall(r"^specs/([^:]+\.md)::line:\d+,column:\d+$", result.stdout, re.M)
        collected = {name: Counter(items)[name] for name in ORDER}
        assert collected == expected, f"python blocks {expected}, Sybil examples {collected}"


def first_parameter_type(function: object) -> object:
    """The annotation of a transition's first parameter (a string: annotations are postponed)."""
    first = next(iter(inspect.signature(function).parameters.values()))  # type: ignore[arg-type]
    return first.annotation


class TestLifecycleDiagram:
    def diagram(self) -> str:
        text = (SPECS / "01-transitions.md").read_text(encoding="utf-8")
        (block,) = [content for info, content in code_blocks(text) if info == "mermaid"]
        return block

    def labels(self) -> list[str]:
        arrow = re.compile(r"^\s*(\S+)\s*-->\s*(\S+)\s*:\s*(.+?)\s*$")
        return [m.group(3) for line in self.diagram().splitlines() if (m := arrow.match(line))]

    def test_every_label_names_a_transition(self):
        labels = self.labels()
        assert labels, "the mermaid diagram has no labelled transitions"
        unknown = sorted(set(labels) - set(transitions.__all__))
        assert not unknown, f"diagram labels that name no transition: {unknown}"

    def test_every_transition_on_the_whole_state_appears(self):
        system = {
            name
            for name in transitions.__all__
            if name != "Outcome" and first_parameter_type(getattr(transitions, name)) == "State"
        }
        assert "issue_manifest" in system
        assert "launch_container" not in system
        missing = sorted(system - set(self.labels()))
        assert not missing, f"lifecycle transitions missing from the diagram: {missing}"
