"""README.md starts with the two commands a new user needs, and CI runs the second."""

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
