"""The documentation site builds with warnings as errors, and its clause ids are anchors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built once for this module as CONTRIBUTING.md says to build it."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(  # noqa: S603 - our interpreter, our docs
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", "-q",
         str(DOCS), str(out)],
        capture_output=True, text=True, check=False, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, "the site does not build:\n" + result.stderr + result.stdout
    return out


class TestTheSite:
    def test_it_builds_without_a_single_warning(self, site):
        """sphinx-build -W: a broken link, reference or docstring fails the build (above)."""
        assert (site / "index.html").is_file()

    def test_every_spec_chapter_is_a_page(self, site):
        """Each chapter of specs/ is a page of the site, read from specs/ itself."""
        assert (DOCS / "specs").resolve() == ROOT / "specs"
        for chapter in (ROOT / "specs").glob("*.md"):
            assert (site / "specs" / chapter.name.replace(".md", ".html")).is_file()

    def test_every_room_of_the_package_has_an_api_page(self):
        """Each sub-package of replication/ is listed by an automodules directive."""
        rooms = {
            f"replication.{path.parent.name}"
            for path in (ROOT / "replication").glob("*/__init__.py")
            if not path.parent.name.startswith("_")
        }
        listed = set()
        for page in (DOCS / "api").glob("*.md"):
            listed |= set(re.findall(r"```\{automodules\} (\S+)", page.read_text("utf-8")))
        assert rooms - listed == set()

    def test_a_clause_id_is_an_anchor_and_its_mentions_link_to_it(self, site):
        """R-QUOTA-1 is defined in 01-transitions.md: its paragraph carries the id, and
        a mention of R-TIME-1 there links to 00-overview.md's definition."""
        transitions = (site / "specs" / "01-transitions.html").read_text(encoding="utf-8")
        assert (
            '<p id="R-QUOTA-1"><strong><a class="reference internal" href="#R-QUOTA-1">'
            "R-QUOTA-1</a></strong>:"
        ) in transitions
        assert 'href="00-overview.html#R-TIME-1">R-TIME-1</a>' in transitions
        invariants = (site / "specs" / "02-invariants.html").read_text(encoding="utf-8")
        assert 'id="INV-DEPTH"' in invariants

    def test_a_mention_of_a_clause_that_does_not_exist_fails_the_build(self, tmp_path):
        """A page that names INV-NOWHERE (a typo, or an id renamed) does not build."""
        source = tmp_path / "docs"
        source.mkdir()
        (source / "conf.py").write_text(
            f"import sys\nsys.path.insert(0, {str(DOCS / '_ext')!r})\n"
            'extensions = ["myst_parser", "clauses"]\n'
        )
        (source / "index.md").write_text(
            "# Index\n\n**R-QUOTA-1**: the quota.\n\nAs R-QUOTA-1 says, and INV-NOWHERE does not.\n"
        )
        result = subprocess.run(  # noqa: S603 - our interpreter, a page of our own
            [sys.executable, "-m", "sphinx", "-W", "-b", "html", "-q", str(source),
             str(tmp_path / "out")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode != 0
        assert "INV-NOWHERE names no clause of the specification" in result.stderr
        assert "R-QUOTA-1 names" not in result.stderr

    def test_a_markdown_link_to_a_clause_reaches_its_anchor(self, site):
        """[text](specs/01-transitions.md#R-QUOTA-1) on the index, through docs/specs -> specs/."""
        index = (site / "index.html").read_text(encoding="utf-8")
        assert 'href="specs/01-transitions.html#R-QUOTA-1"' in index
        assert 'href="specs/02-invariants.html#INV-KILL-SWITCH">INV-KILL-SWITCH</a>' in index

    def test_the_api_reference_is_read_from_the_docstrings(self, site):
        """A transition's docstring appears on the core's API page."""
        from replication import transitions

        api = (site / "api" / "core.html").read_text(encoding="utf-8")
        assert 'id="replication.transitions.issue_manifest"' in api
        # The first words of the docstring, before any markup.
        words = transitions.issue_manifest.__doc__.strip().split(",")[0]
        assert f"<p>{words}," in api
