"""README.md starts with the two commands a new user needs, and CI runs the second."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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


# -- the reports the README shows are real ------------------------------------------------------

#: What the README's reports are the output of: the README's adapter, as written
#: ("inconclusive"); with the two lines of its heartbeat that translate an
#: unknown worker's refusal deleted ("forgetful"); and with those of its
#: deregister deleted too ("keep-going", of which the README shows the table).
REPORT_COMMANDS = {
    "forgetful": ("my_adapter:MyAdapter", "--seed", "1"),
    "inconclusive": ("my_adapter:MyAdapter", "--max-examples", "20", "--seed", "1"),
    "keep-going": ("my_adapter:MyAdapter", "--keep-going", "--profile", "dev", "--seed", "1"),
}
FORGOTTEN = (
    "        if worker_id not in self.controller.registry:  "
    "# the older API ignores these silently\n"
    '            raise Denied("unknown_worker")\n'
)
ALSO_FORGOTTEN = (
    "        if worker_id not in self.controller.registry:  # ignored silently, like heartbeat\n"
    '            raise Denied("unknown_worker")\n'
)


def readme_reports() -> dict[str, str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return dict(re.findall(r"<!-- report: ([\w-]+) -->\n```text\n(.*?)```", text, flags=re.S))


def readme_adapter() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"```python\n(# my_adapter\.py\n.*?)```", text, flags=re.S)
    assert found is not None
    return found.group(1)


def run_report(name: str, directory: Path) -> subprocess.CompletedProcess[str]:
    adapter = readme_adapter()
    if name in {"forgetful", "keep-going"}:
        assert FORGOTTEN in adapter
        adapter = adapter.replace(FORGOTTEN, "")
    if name == "keep-going":
        assert ALSO_FORGOTTEN in adapter
        adapter = adapter.replace(ALSO_FORGOTTEN, "")
    (directory / "my_adapter.py").write_text(adapter, encoding="utf-8")
    return subprocess.run(  # noqa: S603 - our interpreter, our module
        [sys.executable, "-m", "replication", "conformance", *REPORT_COMMANDS[name], "--quiet"],
        capture_output=True, text=True, check=False, cwd=directory,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def shown_part(name: str, report: str) -> str:
    """What the README shows of a report: all of it, or for --keep-going its table and the
    lines that set the divergences aside."""
    if name != "keep-going":
        return report
    lines = report.splitlines()
    table = lines.index(next(line for line in lines if line.startswith("distinct divergences")))
    end = lines.index("", table)
    aside = lines.index(next(line for line in lines if line.startswith("to set them aside")))
    return "\n".join([*lines[table:end], "", *lines[aside:]]) + "\n"


def comparable(report: str) -> list[str]:
    """The report without what changes from run to run: times, and counts that include
    shrinking (how far a time-boxed shrink gets depends on the machine's load)."""
    lines = []
    for raw in report.splitlines():
        line = re.sub(r"\d+(\.\d+)? s\b", "T s", raw)
        if line.startswith("  ") and " examples" in line and " steps (" in line:
            line = "  N examples, N steps (N on the implementation), ..."
        lines.append(line)
    program = [i for i, line in enumerate(lines) if line == "reproduce with this program:"]
    if program:  # a program shrunk in a time box: compare its failing step only
        end = len(lines) - 2
        lines = [*lines[: program[0] + 1], *lines[end - 2 : end]]
    return lines


# Spec: R-KIT-5, R-KIT-6.
@pytest.mark.parametrize("name", sorted(REPORT_COMMANDS))
def test_the_readmes_reports_are_what_the_kit_prints(name, tmp_path):
    result = run_report(name, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    shown = readme_reports()[name]
    assert comparable(shown) == comparable(shown_part(name, result.stdout)), (
        f"README.md's {name!r} report differs from a fresh run; the run printed:\n" + result.stdout
    )


if __name__ == "__main__":  # pragma: no cover - `python tests/test_readme.py` refreshes them
    import tempfile

    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    for report in REPORT_COMMANDS:
        with tempfile.TemporaryDirectory() as scratch:
            printed = shown_part(report, run_report(report, Path(scratch)).stdout)
        text = re.sub(
            rf"(<!-- report: {report} -->\n```text\n).*?```",
            lambda match, printed=printed: match.group(1) + printed + "```",
            text,
            flags=re.S,
        )
    readme.write_text(text, encoding="utf-8")
