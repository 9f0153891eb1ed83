"""Traces: the format, its schema, the samples, the checker, and the journal and trace commands."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from replication import Controller, ManualClock, SandboxOrchestrator
from replication.cli import main
from replication.encoding import canonical_json
from replication.journal import Journal
from replication.journal.codec import contract_to_json, manifest_to_json
from replication.journal.trace import (
    SCHEMA_PATH,
    TraceFormatError,
    check_trace,
    trace_header,
)
from replication.journal.verify import reading
from replication.model import ReplicationContract, ResourceSpec
from tests import trace_samples
from tests.helpers import KEY, OTHER_KEY, RESOURCES, T0, make_contract
from tests.journal_support import hand_signed

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = trace_samples.DIRECTORY


def schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write(path: Path, lines: list) -> Path:
    path.write_bytes(b"".join(canonical_json(line) + b"\n" for line in lines))
    return path


def good() -> list[dict]:
    return lines_of(SAMPLES / "lifecycle.jsonl")


class TestSamples:
    # Spec: R-TRACE-4.
    def test_the_checked_in_samples_are_exactly_what_the_code_makes(self):
        made = {name: trace_samples.render(s.lines) for name, s in trace_samples.samples().items()}
        on_disk = {path.name: path.read_bytes() for path in SAMPLES.glob("*.jsonl")}
        assert made == on_disk, (
            "specs/vectors/traces drifted: run `python -m tests.trace_samples` and review the diff"
        )

    # Spec: R-TRACE-1, R-TRACE-2, R-TRACE-4.
    def test_every_line_of_every_sample_follows_the_published_schema(self):
        jsonschema.Draft202012Validator.check_schema(schema())
        validator = jsonschema.Draft202012Validator(schema())
        for path in SAMPLES.glob("*.jsonl"):
            for number, line in enumerate(lines_of(path), start=1):
                errors = [error.message for error in validator.iter_errors(line)]
                assert not errors, f"{path.name}, line {number}: {errors}"

    # Spec: R-TRACE-3, R-TRACE-4.
    @pytest.mark.parametrize("name", sorted(trace_samples.samples()))
    def test_each_sample_checks_as_documented(self, name):
        sample = trace_samples.samples()[name]
        report = check_trace(SAMPLES / name)
        if sample.divergence is None:
            assert report.ok, report.render()
            assert report.steps == len(sample.lines) - 1
        else:
            step, words = sample.divergence
            assert not report.ok
            assert report.divergence.step == step
            assert report.divergence.line == step + 1
            assert words in report.divergence.problem
            assert report.steps == step - 1

    # Spec: R-TRACE-4.
    def test_the_samples_are_listed_in_the_specification(self):
        text = (ROOT / "specs" / "07-journal.md").read_text(encoding="utf-8")
        for name, sample in trace_samples.samples().items():
            assert f"`{name}`" in text
            if sample.divergence is not None:
                assert re.search(rf"`{re.escape(name)}` \| [^|]* \| step {sample.divergence[0]}\b",
                                 text), name  # fmt: skip


class TestChecker:
    # Spec: R-TRACE-3.
    def test_a_denial_with_another_reason_diverges(self, tmp_path):
        lines = good()
        step = next(n for n, line in enumerate(lines) if n and line["outcome"]["reason"])
        lines[step] = {**lines[step], "outcome": {"decision": "denied", "reason": "cooldown"}}
        report = check_trace(write(tmp_path / "t.jsonl", lines))
        assert report.divergence.step == step
        assert (
            "recorded denied (cooldown), the model gives denied (quota" in report.divergence.problem
        )
        rendered = report.render().splitlines()
        assert "  recorded: denied (cooldown)" in rendered
        assert any(line.startswith("  the model gives: denied (quota: ") for line in rendered)

    # Spec: R-TRACE-3, R-AUDIT-1, R-AUDIT-3.
    def test_events_are_compared_without_detail_and_effects_in_any_order(self, tmp_path):
        lines = good()
        reap = next(n for n, line in enumerate(lines) if line.get("action") == "reap_stale_workers")
        event = lines[reap]["outcome"]["events"][0]
        assert event["effects"] == [["container_killed", "w1"], ["worker_deregistered", "w1"]]
        lines[reap]["outcome"]["events"][0] = {
            **event, "detail": "said otherwise", "effects": list(reversed(event["effects"])),
        }  # fmt: skip
        assert check_trace(write(tmp_path / "same.jsonl", lines)).ok
        lines[reap]["outcome"]["events"][0]["effects"] = event["effects"][1:]
        report = check_trace(write(tmp_path / "other.jsonl", lines))
        assert report.divergence.step == reap
        assert "but: its events are not the model's" in report.render()

    # Spec: R-TRACE-3.
    def test_an_issued_manifest_not_signed_by_the_controller_diverges(self, tmp_path):
        lines = good()
        manifest = lines[1]["outcome"]["manifest"]
        other = OTHER_KEY.sign(b"anything").hex()
        lines[1]["outcome"]["manifest"] = {**manifest, "signature": f"ed25519:{'0' * 16}:{other}"}
        report = check_trace(write(tmp_path / "t.jsonl", lines))
        assert report.divergence.step == 1
        assert "signature is not the controller's" in report.divergence.problem

    # Spec: R-TRACE-3, R-INPUT-1.
    def test_arguments_the_model_refuses_as_bad_input_diverge(self, tmp_path):
        lines = good()
        lines[1] = {**lines[1], "args": {**lines[1]["args"], "worker_id": "w\u202e1"}}
        report = check_trace(write(tmp_path / "t.jsonl", lines))
        assert report.divergence.expected is None
        assert "refuses its arguments as bad input" in report.render()

    # Spec: R-TRACE-3, R-TIME-4.
    def test_a_trace_may_step_its_clock_back(self, tmp_path):
        """Unlike a journal's rows, a trace's now need not increase: the model decides at
        whatever now each step recorded."""
        header = good()[0]
        steps = []
        for now, name in (
            ("2026-01-01T00:01:00.000000Z", "a"),
            ("2026-01-01T00:00:00.000000Z", "b"),
        ):
            arguments = {"manifest": manifest_to_json(hand_signed(name))}
            steps.append({
                "action": "register_worker", "args": arguments, "now": now,
                "outcome": {"decision": "allowed", "reason": None},
            })  # fmt: skip
        assert check_trace(write(tmp_path / "t.jsonl", [header, *steps])).ok

    # Spec: R-TRACE-1, R-REGISTER-5.
    def test_the_standard_stop_condition_is_known_and_others_need_their_contract(self, tmp_path):
        from replication.conformance.fixtures import NO_EXTERNAL_NETWORK

        contract = ReplicationContract(1, 2, 0, stop_conditions=[NO_EXTERNAL_NETWORK])
        header = trace_header(contract_to_json(contract), KEY.verifying_key)
        step = {
            "action": "issue_manifest", "now": "2026-01-01T00:00:00.000000Z",
            "args": {"depth": None, "parent_id": None, "resources": {
                "cpu_limit": 1, "memory_limit_mb": 512,
                "network_policy": {"allow_controller": True, "allow_external": True}},
                "state_snapshot": None, "worker_id": None},
            "outcome": {"decision": "allowed", "reason": None},
        }  # fmt: skip
        assert check_trace(write(tmp_path / "std.jsonl", [header, step])).ok
        register = {
            "action": "register_worker", "now": "2026-01-01T00:00:00.000000Z",
            "args": {"manifest": manifest_to_json(open_network_manifest())},
            "outcome": {"decision": "denied", "reason": "stop_condition"},
        }  # fmt: skip
        assert check_trace(write(tmp_path / "fires.jsonl", [header, register])).ok
        header["contract"]["stop_conditions"] = ["custom"]
        with pytest.raises(TraceFormatError) as unknown:
            check_trace(write(tmp_path / "custom.jsonl", [header, step]))
        assert unknown.value.line == 1
        assert "custom" in str(unknown.value)


def open_network_manifest():
    from replication.model import Manifest, NetworkPolicy
    from replication.signing import sign_manifest

    resources = ResourceSpec(1.0, 512, NetworkPolicy(allow_external=True))
    return sign_manifest(Manifest("open", None, 0, {}, T0, resources), KEY)


class TestFormat:
    # Spec: R-TRACE-1, R-TRACE-2.
    @pytest.mark.parametrize(
        ("mangle", "line"),
        [
            (lambda lines: [], 1),
            (lambda lines: [{"format": "other"}, *lines[1:]], 1),
            (lambda lines: [{**lines[0], "format": "replication.trace.v0"}, *lines[1:]], 1),
            (lambda lines: [lines[0], {"action": "heartbeat"}], 2),
            (lambda lines: [lines[0], lines[1], {**lines[2], "action": "teleport"}], 3),
            (lambda lines: [lines[0], {**lines[1], "now": "yesterday"}], 2),
            (lambda lines: [lines[0], {**lines[1], "extra": 1}], 2),
        ],
        ids=["empty", "no-header", "wrong-version", "step-fields", "action", "now", "extra"],
    )
    def test_a_trace_not_in_the_format_is_refused_naming_the_line(self, tmp_path, mangle, line):
        path = write(tmp_path / "t.jsonl", mangle(good()))
        with pytest.raises(TraceFormatError) as refused:
            check_trace(path)
        assert refused.value.line == line

    # Spec: R-TRACE-1.
    def test_lines_that_are_not_strict_json_are_refused(self, tmp_path):
        header = json.dumps(good()[0])
        for text in ('{"a": 1, "a": 2}', '{"a": NaN}', "[1]", ""):
            path = tmp_path / "t.jsonl"
            path.write_text(f"{header}\n{text}\n", encoding="utf-8")
            with pytest.raises(TraceFormatError) as refused:
                check_trace(path)
            assert refused.value.line == 2


def numbered_snapshot(tmp_path: Path) -> list[dict]:
    """A trace of a manifest issued with ``state_snapshot`` ``{"n": 1}``, then registered."""
    path = tmp_path / "numbered.db"
    controller = Controller(
        make_contract(cooldown_seconds=0), KEY, clock=ManualClock(T0), journal=path
    )
    controller.register_worker(controller.issue_manifest(None, None, {"n": 1}, RESOURCES))
    controller.journal.close()  # type: ignore[union-attr]
    with reading(path) as (header, rows):
        steps = [json.loads(row.body) for row in rows]
    return [trace_header(header["contract"], KEY.verifying_key), *steps]


class TestStrictness:
    # Spec: R-TRACE-3, R-JOURNAL-9.
    def test_a_boolean_is_never_the_number_a_manifest_was_signed_with(self, tmp_path):
        """``true`` where the issued manifest holds ``1`` (Python's ``True == 1``) is another
        manifest: its canonical bytes differ, and so does what the signature covers."""
        lines = numbered_snapshot(tmp_path)
        assert check_trace(write(tmp_path / "good.jsonl", lines)).ok
        issued = lines[1]["outcome"]["manifest"]
        lines[1]["outcome"]["manifest"] = {**issued, "state_snapshot": {"n": True}}
        report = check_trace(write(tmp_path / "issued.jsonl", lines))
        assert report.divergence.step == 1
        assert "its issued manifest is not the one the model issues" in report.divergence.problem
        lines = numbered_snapshot(tmp_path)
        registered = lines[2]["args"]["manifest"]
        lines[2]["args"]["manifest"] = {**registered, "state_snapshot": {"n": True}}
        report = check_trace(write(tmp_path / "registered.jsonl", lines))
        assert report.divergence.step == 2  # not the manifest step 1 issued, cached or not
        assert "bad_signature" in report.divergence.problem

    # Spec: R-TRACE-3.
    def test_a_number_written_with_a_fraction_is_the_same_number(self, tmp_path):
        lines = numbered_snapshot(tmp_path)
        manifest = lines[1]["outcome"]["manifest"]
        resources = {**manifest["resources"], "memory_limit_mb": 512.0}
        lines[1]["outcome"]["manifest"] = {**manifest, "resources": resources}
        assert check_trace(write(tmp_path / "t.jsonl", lines)).ok  # RFC 8785 writes 512

    # Spec: R-TRACE-1, R-TRACE-2.
    @pytest.mark.parametrize(
        ("mangle", "line", "words"),
        [
            (lambda lines: [lines[0], {**lines[1], "sequence": "garbage"}], 2,
             'sequence: "garbage" is not of type "integer"'),
            (lambda lines: [lines[0], {**lines[1], "prev": {"a": [1]}}], 2, "prev: "),
            (lambda lines: [{**lines[0], "verifying_key": lines[0]["verifying_key"].upper()},
                            *lines[1:]], 1, "verifying_key: "),
            (lambda lines: [lines[0], {**lines[1], "outcome": {**lines[1]["outcome"], "events": [
                {**lines[1]["outcome"]["events"][0], "effects": [["a", "b", "c"]]}]}}], 2,
             "outcome/events/0/effects/0: "),
            (lambda lines: [lines[0], {**lines[1], "outcome": {**lines[1]["outcome"], "manifest": {
                **lines[1]["outcome"]["manifest"], "depth": False}}}], 2,
             "outcome/manifest/depth: false is not of type"),
            (lambda lines: [{**lines[0], "journal": {"format": "replication.journal.v2"}},
                            *lines[1:]], 1, "journal: "),
        ],
        ids=["sequence", "prev", "key-upper", "effect-of-three", "depth-false", "journal"],
    )  # fmt: skip
    def test_every_line_is_validated_against_the_schema_naming_where(
        self, tmp_path, mangle, line, words
    ):
        path = write(tmp_path / "t.jsonl", mangle(good()))
        with pytest.raises(TraceFormatError) as refused:
            check_trace(path)
        assert refused.value.line == line
        assert words in refused.value.problem

    # Spec: R-TRACE-1, R-TRACE-3.
    @pytest.mark.parametrize(
        ("text", "line"),
        [
            (lambda lines: [lines[0], {**lines[1], "action": ["issue_manifest"]}], 2),
            (lambda lines: [lines[0], {**lines[1], "action": {"a": 1}}], 2),
            (lambda lines: [lines[0], "[" * 100_000 + "]" * 100_000], 2),
            (lambda lines: ["[" * 100_000 + "]" * 100_000, *lines[1:]], 1),
            (lambda lines: [lines[0], json.dumps(lines[1]).replace(
                '{"task": "root"}', "[" * 90 + "]" * 90)], 2),
            (lambda lines: [lines[0], {**lines[1], "args": {**lines[1]["args"],
                                                           "parent_id": "\ud800"}}], 2),
            (lambda lines: [lines[0], {**lines[1], "outcome": {**lines[1]["outcome"],
                                                              "decision": "\ud800"}}], 2),
            (lambda lines: [lines[0], json.dumps(lines[1]).replace(
                '"cpu_limit": 1', '"cpu_limit": 1e999')], 2),
        ],
        ids=["action-list", "action-object", "deep-line", "deep-header", "deep-snapshot",
             "surrogate-parent", "surrogate-decision", "infinity"],
    )  # fmt: skip
    def test_crafted_lines_end_in_exit_code_2_and_one_line_naming_it(
        self, tmp_path, capsys, text, line
    ):
        lines = [item if isinstance(item, str) else json.dumps(item) for item in text(good())]
        path = tmp_path / "t.jsonl"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with pytest.raises(TraceFormatError) as refused:
            check_trace(path)
        assert refused.value.line == line
        assert main(["trace", "check", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert f"line {line}: " in err


@pytest.fixture
def journal_path(tmp_path) -> Path:
    """A closed journal with containers, denials, a quarantine and the kill switch."""
    path = tmp_path / "journal.db"
    clock = ManualClock(T0)
    orchestrator = SandboxOrchestrator(clock=clock)
    controller = Controller(
        make_contract(cooldown_seconds=0),
        KEY,
        orchestrator=orchestrator,
        clock=clock,
        journal=Journal(path, checkpoint_interval=3),
    )
    manifest = controller.issue_manifest(None, None, {"n": 1}, RESOURCES)
    controller.start_worker(manifest)
    controller.start_worker(hand_signed("solo"))
    controller.heartbeat("ghost")
    controller.quarantine("solo", "suspect")
    orchestrator.kill_worker("w1", "done")
    controller.kill_switch()
    controller.journal.close()  # type: ignore[union-attr]
    return path


class TestExport:
    # Spec: R-TRACE-2, R-JOURNAL-13.
    def test_a_journals_export_is_a_trace_that_checks(self, journal_path, tmp_path, capsysbinary):
        assert main(["journal", "export", str(journal_path)]) == 0
        exported = capsysbinary.readouterr().out
        with reading(journal_path) as (header, rows):
            bodies = [row.body for row in rows]
        lines = exported.splitlines()
        assert lines[1:] == bodies  # the rows' own bytes: their chain can be checked offline
        assert json.loads(lines[0])["journal"] == header
        validator = jsonschema.Draft202012Validator(schema())
        assert all(not list(validator.iter_errors(json.loads(line))) for line in lines)
        path = tmp_path / "export.jsonl"
        path.write_bytes(exported)
        report = check_trace(path)
        assert report.ok, report.render()
        assert report.steps == 7


class TestCommands:
    # Spec: R-JOURNAL-13.
    def test_journal_verify_reports_what_it_checked(self, journal_path, capsys):
        assert main(["journal", "verify", str(journal_path)]) == 0
        out = capsys.readouterr().out
        assert f"journal {journal_path}: verified" in out
        assert "rows: 7" in out
        assert "checkpoints: 2, one every 3 rows" in out
        assert "pass --key to pin it" in out
        assert "kill switch engaged" in out

    # Spec: R-JOURNAL-13.
    def test_journal_verify_pins_the_checkpoint_key(self, journal_path, tmp_path, capsys):
        right, wrong = tmp_path / "right.pem", tmp_path / "wrong.pem"
        right.write_bytes(KEY.verifying_key.to_pem())
        wrong.write_bytes(OTHER_KEY.verifying_key.to_pem())
        assert main(["journal", "verify", str(journal_path), "--key", str(right)]) == 0
        assert "given with --key" in capsys.readouterr().out
        assert main(["journal", "verify", str(journal_path), "--key", str(wrong)]) == 1
        err = capsys.readouterr().err
        assert "header: it names the checkpoint key 56475aa75463474c, not the pinned key" in err
        assert err.count("\n") == 1

    # Spec: R-JOURNAL-13.
    def test_journal_verify_names_the_first_bad_row_and_exits_1(self, journal_path, capsys):
        import sqlite3

        connection = sqlite3.connect(journal_path, isolation_level=None)
        connection.execute("DELETE FROM journal_rows WHERE sequence = 4")
        connection.close()
        assert main(["journal", "verify", str(journal_path)]) == 1
        captured = capsys.readouterr()
        assert captured.err.strip().endswith("row 4: is missing (the next row stored is 5)")
        assert "Traceback" not in captured.err
        assert main(["journal", "verify", str(journal_path), "--debug"]) == 1
        assert "Traceback" in capsys.readouterr().err

    # Spec: R-JOURNAL-13.
    @pytest.mark.parametrize("command", ["verify", "show", "export"])
    def test_a_missing_or_foreign_file_exits_2_in_one_line(self, tmp_path, capsys, command):
        assert main(["journal", command, str(tmp_path / "missing.db")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert not (tmp_path / "missing.db").exists()
        junk = tmp_path / "junk.db"
        junk.write_bytes(b"x" * 4096)
        assert main(["journal", command, str(junk)]) in {1, 2}
        assert capsys.readouterr().err.count("\n") == 1

    # Spec: R-JOURNAL-13.
    def test_journal_show_tells_one_workers_story(self, journal_path, capsys):
        assert main(["journal", "show", str(journal_path), "--worker", "solo"]) == 0
        out = capsys.readouterr().out.splitlines()
        assert [re.split(r"[ :]", line)[4] for line in out] == [
            "start_worker", "quarantine_worker", "engage_kill_switch",
        ]  # fmt: skip
        assert out[0].startswith("#3 2026-01-01T00:00:00.000000Z start_worker solo: allowed")
        assert main(["journal", "show", str(journal_path)]) == 0
        assert len(capsys.readouterr().out.splitlines()) == 7

    # Spec: R-TRACE-3.
    def test_ctrl_c_prints_the_steps_checked_and_exits_130(self, capsys, monkeypatch):
        """Stopped at its third step, the check says two agreed; INTERRUPTED, exit code 130."""
        import replication.journal.trace as trace_module

        real_step, calls = trace_module.step, []

        def pressed_at_the_third(*arguments, **options):
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            return real_step(*arguments, **options)

        monkeypatch.setattr(trace_module, "step", pressed_at_the_third)
        path = SAMPLES / "lifecycle.jsonl"
        assert main(["trace", "check", str(path)]) == 130
        assert capsys.readouterr().out == (
            f"trace {path}: interrupted (Ctrl-C) after 2 steps, each one the model gives\n"
            "INTERRUPTED\n"
        )

    # Spec: R-TRACE-3.
    def test_trace_check_exit_codes(self, tmp_path, capsys):
        assert main(["trace", "check", str(SAMPLES / "lifecycle.jsonl")]) == 0
        assert "16 steps, each one the model gives" in capsys.readouterr().out
        assert main(["trace", "check", str(SAMPLES / "quota-ignored.jsonl")]) == 1
        assert "step 6 (line 7)" in capsys.readouterr().out
        assert main(["trace", "check", str(tmp_path / "missing.jsonl")]) == 2
        assert capsys.readouterr().err == (
            f"replication trace: trace {tmp_path / 'missing.jsonl'}: cannot be read "
            "(No such file or directory)\n"
        )
        assert main(["trace", "check", str(SAMPLES / "lifecycle.jsonl"), "--contract", "nope"]) == 2
        assert "--contract must be 'module:attribute'" in capsys.readouterr().err

    # Spec: R-TRACE-3.
    def test_the_tutorial_shows_the_real_report_of_a_bad_sample(self, capsys, monkeypatch):
        monkeypatch.chdir(ROOT)
        tutorial = ROOT / "docs" / "tutorials" / "check-an-implementation.md"
        readme = tutorial.read_text(encoding="utf-8")
        block = re.search(
            r"```text\n\$ replication trace check (specs/vectors/traces/\S+)\n(.*?)```",
            readme,
            flags=re.S,
        )
        assert block, "the tutorial shows no `replication trace check` run"
        code = main(["trace", "check", block.group(1)])
        shown = block.group(2)
        assert shown == capsys.readouterr().out
        assert f"(exit code {code})" in readme


class TestSchema:
    # Spec: R-TRACE-2, R-JOURNAL-3.
    def test_the_schema_names_exactly_the_actions_and_arguments_of_the_format(self):
        from replication.journal.codec import ACTION_ARGUMENTS

        step = schema()["$defs"]["step"]
        assert step["properties"]["action"]["enum"] == list(ACTION_ARGUMENTS)
        cases = {case["if"]["properties"]["action"]["const"]: case for case in step["allOf"]}
        assert set(cases) == set(ACTION_ARGUMENTS)
        for action, codecs in ACTION_ARGUMENTS.items():
            arguments = cases[action]["then"]["properties"]["args"]
            assert sorted(arguments["required"]) == sorted(codecs)
            assert set(arguments["properties"]) == set(codecs)
