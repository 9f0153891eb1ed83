"""README.md is a short door: the two commands a new user needs (CI runs the second),
and links into the documentation site that lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quick_start_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, flags=re.S)


def test_the_quick_start_has_exactly_two_commands():
    install_and_run, install_and_test = quick_start_commands()
    assert install_and_run.startswith("pip install .")
    assert install_and_test.startswith("pip install '.[test]'")
    assert "pytest" in install_and_test


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    _, install_and_test = quick_start_commands()
    assert install_and_test in ci.splitlines()


def test_the_readme_is_short():
    """At most about 300 lines: everything else is in the documentation site."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300


def test_every_link_of_the_readme_leads_to_a_file_of_the_repository():
    """A relative link (into docs/, specs/, CONTRIBUTING.md...) names a file that exists."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [target for target in targets if "://" not in target]
    assert local, "README.md links nowhere into the documentation"
    assert [target for target in local if not (ROOT / target).exists()] == []
