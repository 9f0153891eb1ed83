"""What the tutorials show is real: the reports are the kit's output, and the journal's
commands run as written on the files the tutorial's own example makes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "docs" / "tutorials"
#: The tutorial for whoever checks an implementation with the kit.
CHECK = TUTORIALS / "check-an-implementation.md"
#: The tutorial for whoever runs workers with a journal.
RUN = TUTORIALS / "run-workers.md"


#: The exit code each report ends with: 1 (NOT CONFORMANT) unless named here.
EXIT_CODES = {"short": 0}
#: What the tutorial's reports are the output of: its adapter, as written, in a run of
#: 20 programs that directed programs still make conclusive ("short"); with the two lines
#: of its heartbeat that translate an unknown worker's refusal deleted ("forgetful"); and
#: with those of its deregister deleted too ("keep-going", of which it shows the table).
REPORT_COMMANDS = {
    "forgetful": ("my_adapter:MyAdapter", "--seed", "1"),
    "short": ("my_adapter:MyAdapter", "--max-examples", "20", "--seed", "1"),
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


def tutorial_reports() -> dict[str, str]:
    text = CHECK.read_text(encoding="utf-8")
    return dict(re.findall(r"<!-- report: ([\w-]+) -->\n```text\n(.*?)```", text, flags=re.S))


def tutorial_adapter() -> str:
    text = CHECK.read_text(encoding="utf-8")
    found = re.search(r"```python\n(# my_adapter\.py\n.*?)```", text, flags=re.S)
    assert found is not None
    return found.group(1)


def run_report(name: str, directory: Path) -> subprocess.CompletedProcess[str]:
    adapter = tutorial_adapter()
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
    """What the tutorial shows of a report: all of it, or for --keep-going its table and the
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
def test_the_tutorials_reports_are_what_the_kit_prints(name, tmp_path):
    result = run_report(name, tmp_path)
    assert EXIT_CODES.get(name, 1) == result.returncode, result.stdout + result.stderr
    shown = tutorial_reports()[name]
    assert comparable(shown) == comparable(shown_part(name, result.stdout)), (
        f"the tutorial's {name!r} report differs from a fresh run; the run printed:\n"
        + result.stdout
    )


# -- the journal's commands run as written --------------------------------------------------------


def tutorial_journal_example() -> tuple[str, list[str], str]:
    """The run-workers tutorial's example program, its shell commands, and the output it shows."""
    text = RUN.read_text(encoding="utf-8")
    program = re.search(r"```python\n(# journal_example\.py\n.*?)```", text, flags=re.S)
    section = text.split("## Checking a journal offline", 1)[1]
    commands = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    shown = re.search(r"<!-- journal: verify-with-key -->\n```text\n(.*?)```", text, flags=re.S)
    assert program, "no `# journal_example.py` program"
    assert commands, "no commands under 'Checking a journal offline'"
    assert shown, "no `verify --key` output"
    return program.group(1), commands.group(1).splitlines(), shown.group(1)


def without_hex(text: str) -> str:
    """The output without what differs from run to run: ids, hashes and key ids."""
    return re.sub(r"\b[0-9a-f]{16,}\b", "HEX", text)


# Spec: R-JOURNAL-13.
def test_the_journal_commands_run_as_written_on_the_example_s_files(tmp_path):
    """The example writes policy.db and checkpoint.pub.pem where it runs, and every command
    of the tutorial then succeeds there; `verify --key` prints what the tutorial shows."""
    program, commands, shown = tutorial_journal_example()
    (tmp_path / "journal_example.py").write_text(program, encoding="utf-8")
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    made = subprocess.run(
        [sys.executable, "journal_example.py"],
        capture_output=True, text=True, check=False, cwd=tmp_path, env=environment,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert {"policy.db", "checkpoint.pub.pem", "controller.key.pem"} <= {
        path.name for path in tmp_path.iterdir()
    }
    outputs = {}
    for command in commands:
        words = command.split()
        assert words[0] == "replication", command
        redirect = words.index(">") if ">" in words else None
        arguments = words[1:redirect]
        result = subprocess.run(  # noqa: S603 - our interpreter, the tutorial's command
            [sys.executable, "-m", "replication", *arguments],
            capture_output=True, text=True, check=False, cwd=tmp_path, env=environment,
        )  # fmt: skip
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
        if redirect is not None:
            (tmp_path / words[redirect + 1]).write_text(result.stdout, encoding="utf-8")
        outputs[command] = result.stdout
    with_key = "replication journal verify policy.db --key checkpoint.pub.pem"
    assert without_hex(shown) == without_hex(outputs[with_key])


if __name__ == "__main__":  # pragma: no cover - `python tests/test_tutorials.py` refreshes them
    import tempfile

    text = CHECK.read_text(encoding="utf-8")
    for report in REPORT_COMMANDS:
        with tempfile.TemporaryDirectory() as scratch:
            printed = shown_part(report, run_report(report, Path(scratch)).stdout)
        text = re.sub(
            rf"(<!-- report: {report} -->\n```text\n).*?```",
            lambda match, printed=printed: match.group(1) + printed + "```",
            text,
            flags=re.S,
        )
    CHECK.write_text(text, encoding="utf-8")
