"""The kit never crashes, hangs or misleads: every broken adapter, bad option and corrupt
vector ends with its exit code and one clear message, and never with a traceback.

Each test pins the exit code and the first line of what the user reads. The
adapters are written into a temporary directory as a user would write them
(importable from the current directory), and the command line runs in-process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from replication import __version__
from replication.cli import main
from replication.conformance.vectors.export import export_vectors
from tests.helpers import IGNORING_SIGINT

ROOT = Path(__file__).resolve().parent.parent

#: Longer than any run of a hanging adapter the kit stops takes, however busy the machine;
#: far shorter than the 600 s the adapter would otherwise sleep.
SAFETY_NET = 120

#: A tiny run: enough to reach an adapter's every method, in well under a second.
QUICK = ("--profile", "dev", "--max-examples", "3", "--seed", "1", "--quiet")


@pytest.fixture
def adapter(tmp_path, monkeypatch, request):
    """Write an adapter module next to the user (the current directory); return its name."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    name = "adapter_" + re.sub(r"\W+", "_", request.node.name).strip("_")
    written = []

    def write(source: str) -> str:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        written.append(name)
        return name

    yield write
    for module in written:
        sys.modules.pop(module, None)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """Run the command line in-process; return its exit code, stdout and stderr."""
    try:
        code = main(list(argv))
    except SystemExit as leaving:  # argparse's own exits (--help, --version, usage errors)
        code = int(leaving.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, out + err
    return code, out, err


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


class TestAdaptersThatCannotRun:
    """Exit code 2, one or two lines: what is wrong, and where in the adapter."""

    # Spec: R-KIT-1.
    def test_a_raising_constructor(self, capsys, adapter):
        name = adapter("""
            class Adapter:
                def __init__(self):
                    raise RuntimeError("no database")
        """)
        code, _, err = cli(capsys, "conformance", f"{name}:Adapter", *QUICK)
        assert (code, first_line(err)) == (
            2,
            (
                f"replication conformance: cannot run: constructing the adapter ({name}:Adapter()) "
                "raised RuntimeError: no database"
            ),
        )
        assert err.splitlines()[1] == f"  at {name}.py:4, in __init__"

    # Spec: R-KIT-1.
    def test_a_syntax_error_in_the_adapter(self, capsys, adapter):
        name = adapter("""
            class Adapter:
                def start(self
        """)
        code, _, err = cli(capsys, "conformance", f"{name}:Adapter", *QUICK)
        assert code == 2
        assert first_line(err).startswith(
            f"replication conformance: cannot run: cannot import {name}: SyntaxError: "
        )
        assert err.splitlines()[1] == f"  at {name}.py:3"

    # Spec: R-KIT-1.
    def test_an_adapter_module_that_raises_on_import(self, capsys, adapter):
        name = adapter("""
            import os
            os.environ["NEVER_SET_BY_ANYONE_42"]
        """)
        code, _, err = cli(capsys, "conformance", f"{name}:Adapter", *QUICK)
        assert (code, first_line(err)) == (
            2, (f"replication conformance: cannot run: importing {name} raised KeyError: "
            "'NEVER_SET_BY_ANYONE_42'"),
        )  # fmt: skip
        assert err.splitlines()[1].startswith(f"  at {name}.py:3")

    @pytest.mark.parametrize(
        ("target", "message"),
        [
            ("no_such_module:Adapter", ("cannot import no_such_module: no module named "
             "'no_such_module' (looked in the current directory and on sys.path)")),
            ("tests.toy_implementation:ToyImplementaton", ("tests.toy_implementation has no "
             "attribute 'ToyImplementaton' (did you mean 'ToyImplementation'?)")),
            ("tests.toy_implementation", ("an implementation must be named "
             "'package.module:factory', got 'tests.toy_implementation'")),
            ("tests.toy_implementation:__doc__", ("tests.toy_implementation:__doc__ must be a "
             "class or a zero-argument function, got")),
        ],
    )  # fmt: skip
    def test_a_target_that_names_nothing_runnable(self, capsys, target, message):
        code, _, err = cli(capsys, "conformance", target, *QUICK)
        assert code == 2
        assert first_line(err).startswith(f"replication conformance: cannot run: {message}")

    # Spec: R-KIT-1.
    def test_missing_methods_without_gaps(self, capsys, adapter):
        name = adapter("""
            from tests.toy_implementation import ToyImplementation

            class Adapter(ToyImplementation):
                heartbeat = None
                quarantine = None
        """)
        code, _, err = cli(capsys, "conformance", f"{name}:Adapter", *QUICK)
        assert (code, first_line(err)) == (
            2,
            (
                "replication conformance: cannot run: the adapter lacks "
                "['heartbeat', 'quarantine']: implement them, or declare "
                "['heartbeat', 'quarantine'] as gaps (gaps = frozenset({...}))"
            ),
        )
        assert err.splitlines()[1] == f"  at {name}.py:4"

    # Spec: R-KIT-1, R-KIT-4.
    def test_missing_methods_declared_as_gaps_run(self, capsys, adapter):
        name = adapter("""
            from tests.toy_implementation import ToyImplementation

            class Adapter(ToyImplementation):
                gaps = frozenset({"quarantine", "release"})
                quarantine = None
                release = None
        """)
        code, out, _ = cli(capsys, "conformance", f"{name}:Adapter", *QUICK)
        assert code == 0, out
        assert (
            "declared gaps: quarantine, release (rules skipped: quarantine, quarantine_then, "
            "release)"
        ) in out

    # Spec: R-KIT-4.
    @pytest.mark.parametrize(
        ("declaration", "message"),
        [
            ('gaps = frozenset({"register"})', "the adapter's gaps may only name"),
            ('gaps = "quarantine"', ("the adapter's gaps must be a frozenset of names, got "
             "'quarantine'")),
            ('unreported = frozenset({"depth"})', "the adapter's unreported may only name"),
        ],
    )  # fmt: skip
    def test_a_wrong_declaration(self, capsys, adapter, declaration, message):
        name = adapter(f"""
            from tests.toy_implementation import ToyImplementation

            class Adapter(ToyImplementation):
                {declaration}
        """)
        code, _, err = cli(capsys, "conformance", f"{name}:Adapter", *QUICK)
        assert code == 2
        assert first_line(err).startswith(f"replication conformance: cannot run: {message}")

    # Spec: R-KIT-1.
    def test_a_raising_start(self, capsys, adapter):
        name = adapter("""
            from tests.toy_implementation import ToyImplementation

            class Adapter(ToyImplementation):
                def start(self, contract, key, clock):
                    raise RuntimeError("boom in start")
        """)
        code, _, err = cli(capsys, "conformance", f"{name}:Adapter", *QUICK)
        assert (code, err.splitlines()) == (
            2,
            [
                "replication conformance: cannot run: start() raised RuntimeError: boom in start",
                f"  at {name}.py:6, in start",
            ],
        )

    # Spec: R-KIT-1, R-KIT-7.
    def test_a_hanging_start(self, capsys, adapter):
        name = adapter("""
            import time
            from tests.toy_implementation import ToyImplementation

            class Adapter(ToyImplementation):
                def start(self, contract, key, clock):
                    time.sleep(600)
        """)
        started = time.monotonic()
        code, _, err = cli(capsys, "conformance", f"{name}:Adapter", *QUICK, "--timeout", "0.3")
        assert (code, first_line(err)) == (
            2, ("replication conformance: cannot run: start() did not return within 0.3 s "
            "(--timeout)"),
        )  # fmt: skip
        assert time.monotonic() - started < SAFETY_NET

    # Spec: R-KIT-1.
    @pytest.mark.parametrize(
        ("returned", "message"),
        [
            ("{'workers': {}}", ("observe() must return a replication.invariants.Observation, "
             "got dict")),
            ("None", ("observe() must return a replication.invariants.Observation, got NoneType "
             "None")),
            ("[]", "observe() must return a replication.invariants.Observation, got list"),
            ("Observation({}, ['w1'], False)", ("observe() must return containers as a set or "
             "frozenset of worker ids, got ['w1'] (list)")),
            ("Observation({}, frozenset(), 'no')", ("observe() must return kill_switch_engaged as "
             "a bool, got 'no' (str)")),
            ("Observation({'w1': WorkerView('w1', None, '0')}, frozenset(), False)",
             "observe() must return workers['w1'].depth as an int, got '0' (str)"),
            ("Observation({'w1': WorkerView('w2', None, 0)}, frozenset(), False)",
             ("observe() must return workers['w1'].worker_id as the key it is filed under "
             "('w1'), got 'w2' (str)")),
            (("Observation({'w1': WorkerView('w1', None, 0, last_heartbeat=datetime(2026, 1, 1))}"
             ", frozenset(), False)"), ("observe() must return workers['w1'].last_heartbeat as a "
             "timezone-aware datetime or None, got")),
        ],
    )  # fmt: skip
    def test_observe_returning_what_the_protocol_does_not_allow(
        self, capsys, adapter, returned, message
    ):
        name = adapter(f"""
            from datetime import datetime
            from replication.invariants import Observation, WorkerView
            from tests.toy_implementation import ToyImplementation

            class Adapter(ToyImplementation):
                def observe(self):
                    return {returned}
        """)
        code, _, err = cli(capsys, "conformance", f"{name}:Adapter", *QUICK)
        assert code == 2, err
        assert first_line(err).startswith(f"replication conformance: cannot run: {message}")
        assert err.splitlines()[1] == f"  at {name}.py:7"

    # Spec: R-KIT-1.
    def test_observe_going_wrong_only_after_a_step(self, capsys, adapter):
        name = adapter("""
            from tests.toy_implementation import ToyImplementation

            class Adapter(ToyImplementation):
                def observe(self):
                    observed = super().observe()
                    return observed if not observed.workers else dict(observed.workers)
        """)
        code, _, err = cli(capsys, "conformance", f"{name}:Adapter", *QUICK)
        assert (code, err.splitlines()) == (
            2,
            [
                (
                    "replication conformance: cannot run: observe() must return a "
                    "replication.invariants.Observation, got dict"
                ),
                f"  at {name}.py:5",
            ],
        )

    # Spec: R-KIT-1.
    @pytest.mark.parametrize(
        ("method", "message"),
        [
            ("def issue(self, *args):\n        return None",
             "issue() must return the signed Manifest when it allows, got None"),
            ("def heartbeat(self, worker_id):\n        raise Denied(404)",
             "heartbeat() raised Denied(404): the reason must be a reason code"),
        ],
    )  # fmt: skip
    def test_actions_breaking_the_protocol(self, capsys, adapter, method, message):
        name = adapter(
            "from replication.conformance.adapters.adapter import Denied\n"
            "from tests.toy_implementation import ToyImplementation\n\n"
            "class Adapter(ToyImplementation):\n    " + method + "\n"
        )
        code, _, err = cli(capsys, "conformance", f"{name}:Adapter", *QUICK)
        assert code == 2, err
        assert first_line(err).startswith(f"replication conformance: cannot run: {message}")


class TestImplementationsThatMisbehave:
    """A hang or a crash is a finding about the implementation: exit code 1, located."""

    # Spec: R-KIT-6, R-KIT-7.
    def test_a_hanging_call_is_stopped_and_reported_with_its_arguments(self, capsys, adapter):
        name = adapter("""
            import time
            from tests.toy_implementation import ToyImplementation

            class Adapter(ToyImplementation):
                def launch(self, manifest):
                    time.sleep(600)
        """)
        started = time.monotonic()
        code, out, _ = cli(capsys, "conformance", f"{name}:Adapter", *QUICK, "--timeout", "0.3")
        assert code == 1
        assert time.monotonic() - started < SAFETY_NET
        assert "DIVERGENCE (timeout)" in out
        assert re.search(
            r"^  launch\(Manifest\(worker_id='k\d+', parent_id=.*\)\) did not return within "
            r"0\.3 s \(--timeout\)$", out, flags=re.MULTILINE,
        ), out  # fmt: skip
        assert "[FAIL] every call returned within the time limit (0.3 s)" in out
        assert out.rstrip().endswith("NOT CONFORMANT")
        # The program that hung, up to the hanging call: its contract, then every call.
        lines = out.splitlines()
        first = lines.index(
            "  the program up to the hanging call (every call into the adapter, with its clock):"
        )
        assert lines[first + 1].startswith("    start(contract={'max_depth': ")
        last = next(n for n in range(first, len(lines)) if lines[n].endswith("<- did not return"))
        calls = lines[first + 2 : last + 1]
        assert all(re.match(r"^    \w+\(.*\)  # clock \+", call) for call in calls), calls
        assert re.match(r"^    launch\(Manifest\(worker_id='k\d+', ", calls[-1]), calls[-1]

    # Spec: R-KIT-6, R-KIT-7.
    @pytest.mark.parametrize(
        "after",
        [
            "0.2",  # it swallows the interrupt and returns late: still a timeout
            "600",  # it sleeps on, as when Python drops the interrupt in a gc callback: sent again
        ],
        ids=["returns-late", "sleeps-on"],
    )
    def test_a_call_that_swallows_the_interrupt_is_still_a_timeout(self, capsys, adapter, after):
        name = adapter(f"""
            import time
            from tests.toy_implementation import ToyImplementation

            class Adapter(ToyImplementation):
                def heartbeat(self, worker_id):
                    try:
                        time.sleep(600)
                    except BaseException:
                        time.sleep({after})
                    super().heartbeat(worker_id)
        """)
        started = time.monotonic()
        code, out, _ = cli(capsys, "conformance", f"{name}:Adapter", *QUICK, "--timeout", "0.3")
        assert code == 1
        assert re.search(r"^  heartbeat\('[^']*'\) did not return within 0\.3 s", out, re.M), out
        assert time.monotonic() - started < SAFETY_NET

    # Spec: R-KIT-6.
    def test_an_adapter_that_ignores_sigint_is_still_stopped(self, capsys, adapter):
        """SIGINT ignored in start(): the kit puts its handler back after each call."""
        name = adapter("""
            import signal
            import time
            from tests.toy_implementation import ToyImplementation

            class Adapter(ToyImplementation):
                def start(self, contract, key, clock):
                    signal.signal(signal.SIGINT, signal.SIG_IGN)
                    super().start(contract, key, clock)

                def heartbeat(self, worker_id):
                    time.sleep(600)
        """)
        started = time.monotonic()
        code, out, _ = cli(capsys, "conformance", f"{name}:Adapter", *QUICK, "--timeout", "0.3")
        assert code == 1
        assert re.search(r"^  heartbeat\('[^']*'\) did not return within 0\.3 s", out, re.M), out
        assert time.monotonic() - started < SAFETY_NET

    # Spec: R-KIT-6.
    @pytest.mark.parametrize("raised", ["SystemExit(0)", "KeyboardInterrupt", "GeneratorExit"])
    def test_a_base_exception_the_adapter_raises_is_its_crash(self, capsys, adapter, raised):
        """Not the end of the run: SystemExit(0) once ended it silently with exit code 0,
        and the adapter's own KeyboardInterrupt passed for Ctrl-C (130)."""
        name = adapter(f"""
            from tests.toy_implementation import ToyImplementation

            class Adapter(ToyImplementation):
                def heartbeat(self, worker_id):
                    raise {raised}
        """)
        code, out, _ = cli(capsys, "conformance", f"{name}:Adapter", *QUICK, "--no-shrink")
        assert code == 1, out
        assert "crash divergence at heartbeat" in out
        assert f"raised {raised.partition('(')[0]}: " in out
        assert out.rstrip().endswith("NOT CONFORMANT")

    # Spec: R-KIT-6.
    def test_a_crash_points_into_the_adapter(self, capsys, adapter):
        name = adapter("""
            from tests.toy_implementation import ToyImplementation

            class Adapter(ToyImplementation):
                def kill(self, worker_id):
                    raise RuntimeError("boom in kill")
        """)
        code, out, _ = cli(capsys, "conformance", f"{name}:Adapter", "--seed", "2", "--quiet",
                           "--shrink-time", "3")  # fmt: skip
        assert code == 1
        assert re.search(r"^crash divergence at kill_worker \(clock \+[\d.]+ s\)$", out, re.M)
        assert f"  - raised at {name}.py:6, in kill" in out
        assert "[FAIL] the implementation never crashed" in out
        assert out.count("reproduce with this program:") == 1
        assert "@reproduce_failure" not in out

    def test_debug_shows_the_adapters_traceback(self, capsys, adapter):
        name = adapter("""
            class Adapter:
                def __init__(self):
                    raise RuntimeError("no database")
        """)
        code = main(["conformance", f"{name}:Adapter", *QUICK, "--debug"])
        err = capsys.readouterr().err
        assert code == 2
        assert "Traceback (most recent call last)" in err
        assert 'raise RuntimeError("no database")' in err


@pytest.fixture
def sigint_ignored():
    """SIGINT ignored for the test, as a script started in the background without job control."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    yield
    signal.signal(signal.SIGINT, previous)


#: An adapter whose start() never returns: only the kit's time limit ends the run.
ENDLESS_START = """
    import time
    from tests.toy_implementation import ToyImplementation

    class Adapter(ToyImplementation):
        def start(self, contract, key, clock):
            while True:
                time.sleep(1)
"""


class TestTimeLimitsHoweverStarted:
    """The watchdog interrupts with a signal of its own: SIGINT's disposition changes nothing."""

    # Spec: R-KIT-7.
    def test_a_hanging_start_is_stopped_with_sigint_ignored(self, capsys, adapter, sigint_ignored):
        """An endless start() ends at --timeout, and SIGINT is left as the command found it."""
        name = adapter(ENDLESS_START)
        code, _, err = cli(capsys, "conformance", f"{name}:Adapter", *QUICK, "--timeout", "0.3")
        assert (code, first_line(err)) == (
            2, ("replication conformance: cannot run: start() did not return within 0.3 s "
            "(--timeout)"),
        )  # fmt: skip
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN

    # Spec: R-KIT-7.
    def test_a_hanging_call_is_stopped_with_sigint_ignored(self, capsys, adapter, sigint_ignored):
        name = adapter("""
            import time
            from tests.toy_implementation import ToyImplementation

            class Adapter(ToyImplementation):
                def heartbeat(self, worker_id):
                    while True:
                        time.sleep(1)
        """)
        code, out, _ = cli(capsys, "conformance", f"{name}:Adapter", *QUICK, "--timeout", "0.3")
        assert code == 1
        assert re.search(r"^  heartbeat\('[^']*'\) did not return within 0\.3 s", out, re.M), out

    # Spec: R-KIT-7.
    def test_the_command_line_started_in_the_background(self, tmp_path):
        """A process started with SIGINT ignored: the endless start() still ends at --timeout."""
        (tmp_path / "endless.py").write_text(textwrap.dedent(ENDLESS_START), encoding="utf-8")
        result = subprocess.run(  # noqa: S603 - our interpreter, our module
            [*IGNORING_SIGINT, "-m", "replication", "conformance", "endless:Adapter", *QUICK,
             "--timeout", "0.5"],
            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert (result.returncode, first_line(result.stderr)) == (
            2, ("replication conformance: cannot run: start() did not return within 0.5 s "
            "(--timeout)"),
        )  # fmt: skip

    # Spec: R-KIT-7.
    def test_the_pytest_plugin_started_in_the_background(self, tmp_path):
        """Through the plugin too: the item fails at --replication-timeout, the session ends."""
        (tmp_path / "endless.py").write_text(textwrap.dedent(ENDLESS_START), encoding="utf-8")
        # A config file of its own: the run never takes the settings of a pyproject.toml or
        # pytest.ini above the temporary directory (addopts, xdist), wherever TMPDIR is.
        (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        result = subprocess.run(  # noqa: S603 - our interpreter, pytest
            [*IGNORING_SIGINT, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
             "-rf", "--replication-impl=endless:Adapter", "--replication-timeout=0.5",
             "--replication-profile=dev", "--replication-max-examples=3"],
            cwd=tmp_path, env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}",
                               "COLUMNS": "240"},
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert result.returncode == 1, result.stdout + result.stderr
        assert (
            "FAILED replication::conformance[endless:Adapter] - cannot run: start() did not "
            "return within 0.5 s"
        ) in result.stdout, result.stdout


class TestOptions:
    """Options and output paths are checked before the run, each in one line."""

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            (("--max-examples", "0"), "argument --max-examples: must be at least 1, got 0"),
            (("--max-examples", "-5"), "argument --max-examples: must be at least 1, got -5"),
            (("--max-examples", "many"), "argument --max-examples: expected a whole number"),
            (("--timeout", "0"), "argument --timeout: must be a finite number of seconds above 0"),
            (("--max-time", "-1"), "argument --max-time: must be a finite number of seconds"),
            (("--shrink-time", "nan"), "argument --shrink-time: must be a finite number"),
            (("--mode", "bytes"), "argument --mode: invalid choice: 'bytes'"),
        ],
    )
    def test_bad_options(self, capsys, arguments, message):
        code, _, err = cli(capsys, "conformance", *arguments)
        assert code == 2
        assert first_line(err).startswith(f"replication conformance: {message}")
        assert first_line(err).endswith("(see replication conformance --help)")

    def test_an_unwritable_json_path_is_refused_before_the_run(self, capsys, tmp_path):
        for path, why in (
            (tmp_path / "missing" / "report.json", "the directory"),
            (tmp_path, "is a directory, not a file"),
        ):
            code, out, err = cli(capsys, "conformance", "--json", str(path), *QUICK)
            assert (code, out) == (2, "")
            assert first_line(err).startswith(f"replication conformance: --json {path}: ")
            assert why in first_line(err)

    def test_a_bad_known_divergences_file(self, capsys, tmp_path):
        known = tmp_path / "known.txt"
        code, _, err = cli(capsys, "conformance", "--known", str(known), *QUICK)
        assert code == 2
        assert first_line(err).startswith(
            "replication conformance: cannot run: cannot read the known-divergences file"
        )
        known.write_text("# header\nregister_worker allows replays\n")
        code, _, err = cli(capsys, "conformance", "--known", str(known), *QUICK)
        assert code == 2
        assert first_line(err).startswith(
            "replication conformance: cannot run: a known divergence must read "
            "'KIND at ACTION: expected X | got Y'"
        )
        assert err.splitlines()[1] == f"  at {known}:2"

    def test_version(self, capsys):
        assert cli(capsys, "--version") == (0, f"replication {__version__}\n", "")


@pytest.fixture(scope="module")
def vectors(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("vectors")
    export_vectors(directory)
    return directory


class TestVectorErrors:
    """Every way a vector directory can be unusable: exit code 2 and one line naming the file."""

    def copy(self, vectors: Path, tmp_path: Path) -> Path:
        target = tmp_path / "copy"
        shutil.copytree(vectors, target)
        return target

    def check(self, capsys, directory: Path, *extra: str) -> tuple[int, str]:
        code, _, err = cli(capsys, "vectors", "check", str(directory), *extra)
        assert len(err.splitlines()) <= 2, err
        return code, first_line(err)

    # Spec: R-VECTOR-1, R-VECTOR-7.
    def test_a_missing_or_empty_directory(self, capsys, tmp_path):
        assert self.check(capsys, tmp_path / "nope") == (
            2, f"replication vectors: cannot run: {tmp_path / 'nope'}: no such directory"
        )  # fmt: skip
        assert self.check(capsys, tmp_path) == (
            2, (f"replication vectors: cannot run: {tmp_path / 'index.json'}: missing "
            "(replication vectors export DIR writes a vector directory)"),
        )  # fmt: skip

    # Spec: R-VECTOR-1, R-VECTOR-7.
    def test_corrupt_json(self, capsys, vectors, tmp_path):
        copy = self.copy(vectors, tmp_path)
        (copy / "scenarios" / "quota.json").write_text('{"format": ')
        assert self.check(capsys, copy) == (
            2, (f"replication vectors: cannot run: {copy / 'scenarios' / 'quota.json'}: not "
            "valid JSON: Expecting value (line 1 column 12)"),
        )  # fmt: skip

    # Spec: R-VECTOR-1, R-VECTOR-7.
    def test_an_unknown_action_names_the_file_and_step(self, capsys, vectors, tmp_path):
        copy = self.copy(vectors, tmp_path)
        path = copy / "scenarios" / "quota.json"
        scenario = json.loads(path.read_text())
        scenario["steps"][2]["action"] = "teleport"
        path.write_text(json.dumps(scenario))
        code, line = self.check(capsys, copy)
        assert code == 2
        assert line.startswith(
            f"replication vectors: cannot run: {path} step 2 action: 'teleport' "
            "is not one of ['issue', "
        )

    # Spec: R-VECTOR-1.
    def test_an_extra_field_is_not_in_the_format(self, capsys, vectors, tmp_path):
        copy = self.copy(vectors, tmp_path)
        path = copy / "scenarios" / "quota.json"
        scenario = json.loads(path.read_text())
        scenario["steps"][0]["args"]["colour"] = "blue"
        path.write_text(json.dumps(scenario))
        assert self.check(capsys, copy) == (
            2, (f"replication vectors: cannot run: {path} step 0 args: Additional "
            "properties are not allowed ('colour' was unexpected) (not in the vector format)"),
        )  # fmt: skip

    # Spec: R-VECTOR-1.
    def test_every_file_is_named_with_its_directory(self, capsys, vectors, tmp_path):
        """signing.json out of the format: the line says which directory's (vbad5/signing.json)."""
        copy = tmp_path / "vbad5"
        shutil.copytree(vectors, copy)
        (copy / "signing.json").write_text('{"x": 1}')
        assert self.check(capsys, copy) == (
            2, (f"replication vectors: cannot run: {copy / 'signing.json'}: 'format' is a "
            "required property (not in the vector format)"),
        )  # fmt: skip

    # Spec: R-VECTOR-1.
    def test_the_report_names_the_directory_and_counts_in_words(self, capsys, vectors):
        code, out, _ = cli(capsys, "vectors", "check", str(vectors))
        assert code == 0, out
        assert re.match(
            rf"vectors {re.escape(str(vectors))}: \d+ files, [\d,]+ steps, \d+ rules exercised\n",
            out,
        ), out

    # Spec: R-VECTOR-7, R-KIT-6.
    def test_ctrl_c_during_the_replay_prints_what_ran_and_exits_130(self, capsys, vectors, adapter):
        name = adapter("""
            import os
            import signal
            import time
            from tests.toy_implementation import ToyImplementation

            class Adapter(ToyImplementation):
                def kill_switch(self):
                    os.kill(os.getpid(), signal.SIGINT)  # as the user's Ctrl-C, at that moment
                    time.sleep(600)
        """)
        code, out, _ = cli(capsys, "vectors", "check", str(vectors), "--impl", f"{name}:Adapter")
        assert code == 130, out
        assert re.search(r"^interrupted \(Ctrl-C\): \d+ of \d+ scenarios replayed$", out, re.M), out
        assert out.endswith("INTERRUPTED\n")

    # Spec: R-VECTOR-7.
    def test_a_step_missing_its_arguments(self, capsys, vectors, tmp_path):
        copy = self.copy(vectors, tmp_path)
        path = copy / "scenarios" / "quota.json"
        scenario = json.loads(path.read_text())
        del scenario["steps"][3]["args"]["manifest"]
        path.write_text(json.dumps(scenario))
        assert self.check(capsys, copy) == (
            2,
            (
                f"replication vectors: cannot run: {path} step 3 args: "
                "'manifest' is a required property (not in the vector format)"
            ),
        )

    def test_export_onto_a_file(self, capsys, tmp_path):
        target = tmp_path / "file.txt"
        target.write_text("mine")
        code, _, err = cli(capsys, "vectors", "export", str(target))
        assert (code, err) == (2, f"replication vectors: {target} exists and is not a directory\n")
        assert target.read_text() == "mine"

    # Spec: R-KIT-4, R-VECTOR-3.
    def test_declared_gaps_are_skipped_and_counted(self, capsys, vectors):
        code, out, _ = cli(capsys, "vectors", "check", str(vectors), "--impl",
                           "tests.toy_implementation:WithoutQuarantine")  # fmt: skip
        assert code == 0, out
        assert re.search(r"^skipped for declared gaps \(quarantine, release\): \d+ steps in "
                         r"\d+ scenarios$", out, re.M)  # fmt: skip
        assert "  scenarios/quarantine.json: " in out
        assert out.endswith("OK\n")

    def test_an_adapter_that_cannot_run(self, capsys, vectors):
        code, line = self.check(capsys, vectors, "--impl", "tests.toy_implementation:Nope")
        assert (code, line) == (
            2, ("replication vectors: cannot run: tests.toy_implementation has no attribute "
            "'Nope'"),
        )  # fmt: skip


# Spec: R-KIT-6.
@pytest.mark.parametrize(
    "python", [(sys.executable,), IGNORING_SIGINT], ids=["foreground", "sigint-ignored"]
)
def test_ctrl_c_prints_the_partial_report_and_exits_130(tmp_path, python):
    """Interrupted mid-run, the kit prints what it did so far, exits 130, no traceback;
    started with SIGINT ignored (a script's background job) too."""
    process = subprocess.Popen(  # noqa: S603 - our interpreter, our module
        [*python, "-m", "replication", "conformance", "--seed", "3",
         "replication.conformance.adapters:ReferenceImplementation"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    assert process.stderr.readline().startswith("searching: 0/400 examples")  # it runs
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    assert "  interrupted (Ctrl-C): what ran so far" in out
    assert out.rstrip().endswith("INTERRUPTED")
    assert "Traceback" not in out + err
    assert not (tmp_path / ".hypothesis").exists()
