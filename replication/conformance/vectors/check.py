"""Check a vector directory, and replay its scenarios against an adapter.

``replication vectors check DIR [--impl module:factory]`` validates every file
against the JSON Schema shipped with the kit (not the directory's own copy),
checks the index (R-VECTOR-2), the signing vectors (R-VECTOR-4) and the
secret-migration vectors (R-VECTOR-6), and with
an adapter replays every scenario (R-VECTOR-3). A directory that cannot be
read, a file that is not JSON or does not follow the schema, an unknown action:
each raises :class:`VectorError`, one line naming the file and the step. A
scenario that uses an action the adapter declares a gap stops at that step,
and its remaining steps are counted as skipped.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import jsonschema

from replication._files import InputFileError, check_shape, read_regular_file
from replication._text import counted, decision_text
from replication.conformance.adapters.adapter import Denied
from replication.conformance.adapters.calls import CallTimeout, ContractViolation, Watchdog, locate
from replication.conformance.adapters.observations import (
    Reporting,
    checked_observation,
    compare_observations,
)
from replication.conformance.adapters.preflight import Adapter, SetupError, load_adapter
from replication.conformance.vectors.jsonforms import (
    SCHEMA_PATH,
    contract_from_json,
    manifest_from_json,
    manifest_to_json,
    observation_from_json,
    parse_time,
)
from replication.errors import BadSignatureError, InvalidInputError, ReplicationDenied
from replication.model import Manifest
from replication.signer import SECRET_MIGRATION_TAG, signing_key_from_secret
from replication.signing import SigningKey, VerifyingKey, sign_manifest, verify_manifest

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.conformance.adapters.adapter import Implementation
    from replication.invariants import Observation

__all__ = ["VectorCheck", "VectorError", "check_vectors"]

#: How deeply a vector file may nest: a manifest's state snapshot (64) and the levels around it.
_MAX_DEPTH = 80
#: Seconds one call into the adapter may take while replaying.
REPLAY_TIMEOUT = 5.0


class VectorError(Exception):
    """The vector directory cannot be used: one line naming the file (and step) at fault."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@attrs.define
class VectorCheck:
    """What checking a vector directory found."""

    #: The directory checked, which the report names.
    directory: str = ""
    files: int = 0
    steps: int = 0
    failures: list[str] = attrs.field(factory=list)
    rules: set[str] = attrs.field(factory=set)
    #: Scenario file -> (first skipped step, steps skipped, the gap action at that step).
    skipped: dict[str, tuple[int, int, str]] = attrs.field(factory=dict)
    gaps: tuple[str, ...] = ()
    #: Scenarios replayed against the adapter, of how many (0 of 0 without one).
    replayed: int = 0
    scenarios: int = 0
    #: Whether Ctrl-C stopped the replay: the report shows what ran.
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        """Whether every file and step checked out."""
        return not self.failures

    def render(self) -> str:
        """Return a short text report."""
        figures = [counted(self.files, "file"), counted(self.steps, "step")]
        rules = counted(len(self.rules), "rule")
        lines = [f"vectors {self.directory}: {', '.join(figures)}, {rules} exercised"]
        if self.skipped:
            total = sum(count for _, count, _ in self.skipped.values())
            lines.append(
                f"skipped for declared gaps ({', '.join(self.gaps)}): {counted(total, 'step')} "
                f"in {counted(len(self.skipped), 'scenario')}"
            )
            lines += [
                f"  {name}: {counted(count, 'step')} from step {first} ({action})"
                for name, (first, count, action) in sorted(self.skipped.items())
            ]
        lines += [f"FAIL {failure}" for failure in self.failures]
        if self.interrupted:
            lines.append(
                f"interrupted (Ctrl-C): {self.replayed} of "
                f"{counted(self.scenarios, 'scenario')} replayed"
            )
            lines.append("INTERRUPTED")
        else:
            lines.append("OK" if self.ok else counted(len(self.failures), "failure"))
        return "\n".join(lines)


# -- reading and validating -------------------------------------------------------------------


@cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def _where(name: str, path: list[str | int]) -> str:
    """``scenarios/x.json step 3 args.manifest``: a JSON path as a reader says it."""
    parts = list(path)
    text = name
    if len(parts) >= 2 and parts[0] == "steps" and isinstance(parts[1], int):
        text += f" step {parts[1]}"
        parts = parts[2:]
    elif len(parts) >= 2 and parts[0] == "cases" and isinstance(parts[1], int):
        text += f" case {parts[1]}"
        parts = parts[2:]
    if parts:
        text += " " + ".".join(str(part) for part in parts)
    return text


def _read(path: Path) -> bytes:
    """Read a vector file: a regular file of at most ``MAX_FILE_BYTES`` (R-JOURNAL-15).

    A symlink to a FIFO or a device is refused before it is opened.
    """
    try:
        return read_regular_file(str(path))
    except InputFileError as error:
        raise VectorError(str(error)) from None
    except OSError as error:
        raise VectorError(f"{path}: cannot be read: {error.strerror}") from None


def _load(directory: Path, name: str, definition: str) -> Any:
    """Read ``name`` as JSON and validate it against the schema's ``definition``.

    Its nesting and the length of its lists are bounded before the schema
    walks it: a list repeated thousands of times over is refused at once.
    """
    path = directory / name
    if not path.exists() and not path.is_symlink():
        hint = " (replication vectors export DIR writes a vector directory)"
        raise VectorError(f"{path}: missing{hint if name == 'index.json' else ''}")
    try:
        data = json.loads(_read(path).decode("utf-8"))
    except UnicodeDecodeError:
        raise VectorError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        message = f"{path}: not valid JSON: {error.msg} (line {error.lineno} column {error.colno})"
        raise VectorError(message) from None
    except RecursionError:
        raise VectorError(f"{path}: nesting too deep (more than Python can parse)") from None
    except ValueError as error:  # not JSONDecodeError: a number of more digits than Python reads
        raise VectorError(f"{path}: not valid JSON: {error}") from None
    shape = check_shape(data, depth=_MAX_DEPTH)
    if shape is not None:
        raise VectorError(f"{path}: {shape}")
    schema = {"$ref": f"#/$defs/{definition}", "$defs": _schema()["$defs"]}
    problem = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(data)
    )
    if problem is not None:
        where = _where(str(path), list(problem.absolute_path))
        raise VectorError(f"{where}: {problem.message} (not in the vector format)")
    return data


def _check_index(directory: Path, result: VectorCheck) -> list[str]:
    index = _load(directory, "index.json", "index")
    for name in list(index["files"]):
        # Only a file of the directory is read: never one an index names outside it.
        if not name or Path(name).is_absolute() or ".." in Path(name).parts or "\0" in name:
            result.failures.append(f"{name!r}: not a path inside the vector directory")
            del index["files"][name]
    for name, entry in index["files"].items():
        path = directory / name
        if not path.exists():
            result.failures.append(f"{name}: listed in index.json but missing")
            continue
        if hashlib.sha256(_read(path)).hexdigest() != entry["sha256"]:
            result.failures.append(f"{name}: its SHA-256 differs from index.json")
        result.rules.update(entry["exercises"])
    listed = set(index["files"])
    for path in sorted(directory.rglob("*.json")):
        name = path.relative_to(directory).as_posix()
        if name != "index.json" and name not in listed:
            result.failures.append(f"{name}: not listed in index.json (it would never be loaded)")
    scenarios = sorted(name for name in listed if name.startswith("scenarios/"))
    for name in scenarios:
        if (directory / name).exists():
            _load(directory, name, "scenario")
    return [name for name in scenarios if (directory / name).exists()]


def _check_signing(directory: Path, result: VectorCheck) -> None:
    if not (directory / "signing.json").exists():
        return  # the index check has reported it missing
    data = _load(directory, "signing.json", "signing")
    key = SigningKey.from_seed(bytes.fromhex(data["key_seed"])).verifying_key
    if key.raw.hex() != data["public_key"]:
        result.failures.append("signing.json: public_key does not match key_seed")
    for number, case in enumerate(data["cases"]):
        manifest = manifest_from_json(case["manifest"])
        if manifest.signing_payload.hex() != case["payload_hex"]:
            result.failures.append(f"signing.json case {number}: payload bytes differ")
        try:
            verify_manifest(manifest, key)
            valid = True
        except BadSignatureError:
            valid = False
        if valid != case["valid"]:
            result.failures.append(
                f"signing.json case {number}: signature {'verifies' if valid else 'fails'}, "
                f"expected {'valid' if case['valid'] else 'invalid'}"
            )
        result.steps += 1


def _check_secret_migration(directory: Path, result: VectorCheck) -> None:
    if not (directory / "secret-migration.json").exists():
        return  # the index check has reported it missing
    data = _load(directory, "secret-migration.json", "secret_migration")
    if data["kdf"]["info"].encode("ascii") != SECRET_MIGRATION_TAG:
        result.failures.append("secret-migration.json: kdf info is not the derivation's tag")
    for number, case in enumerate(data["cases"]):
        where = f"secret-migration.json case {number}"
        key = signing_key_from_secret(case["secret"])
        if key.private_key.private_bytes_raw().hex() != case["seed"]:
            result.failures.append(f"{where}: the derived seed differs")
        if (key.verifying_key.raw.hex(), key.verifying_key.key_id) != (
            case["public_key"],
            case["key_id"],
        ):
            result.failures.append(f"{where}: the derived public key differs")
        manifest = manifest_from_json(case["manifest"])
        if sign_manifest(manifest, key).signature != manifest.signature:
            result.failures.append(f"{where}: the derived key signs differently")
        try:
            verify_manifest(manifest, VerifyingKey(bytes.fromhex(case["public_key"])))
        except BadSignatureError:
            result.failures.append(f"{where}: signature fails under public_key")
        result.steps += 1
    for secret in data["refused"]:
        try:
            signing_key_from_secret(secret)
        except InvalidInputError:
            pass
        else:
            result.failures.append(f"secret-migration.json: refused secret {secret!r} accepted")
        result.steps += 1


# -- replaying --------------------------------------------------------------------------------


def _without_manifests(observation: Observation) -> Observation:
    # Vector observations carry no manifests (the manifests are in the steps).
    workers = {wid: attrs.evolve(view, manifest=None) for wid, view in observation.workers.items()}
    return attrs.evolve(observation, workers=workers)


def _gap_of(step: dict[str, Any], gaps: frozenset[str]) -> str | None:
    """Return the declared gap a step needs, if it needs one."""
    action = step["action"]
    if action == "issue" and step["args"]["worker_id"] is None and "generated_ids" in gaps:
        return "generated_ids"
    return action if action in gaps else None


class _Replay:
    """One adapter replaying scenarios, each call under the time limit.

    An adapter that signs with its own scheme gets every manifest rebuilt from
    the step's ``origin``: its own issued manifest, the vector's fields under its
    own signature (tampered), or the fields signed by its ``sign`` or
    ``sign_with_another_key``.
    """

    def __init__(self, adapter: Adapter, watchdog: Watchdog, result: VectorCheck) -> None:
        self.adapter = adapter
        self.watchdog = watchdog
        self.result = result
        self.reporting = Reporting(adapter.unreported)
        #: The manifest the implementation returned at each issue step of the scenario.
        self.issued: dict[int, Manifest] = {}

    def _manifest(self, implementation: Implementation, arguments: dict[str, Any]) -> Manifest:
        manifest = manifest_from_json(arguments["manifest"])
        origin = arguments.get("origin")
        if not self.adapter.signs or origin is None:
            return manifest
        kind = origin["kind"]
        if kind in {"issued", "tampered"}:
            own = self.issued.get(origin["step"])
            if own is None:  # its issue was refused: the vector's own bytes are all there is
                return manifest
            return own if kind == "issued" else attrs.evolve(manifest, signature=own.signature)
        if kind == "signed":
            method = "sign" if origin["by"] == "controller" else "sign_with_another_key"
            signed: Manifest = getattr(implementation, method)(attrs.evolve(manifest, signature=""))
            return signed
        return attrs.evolve(manifest, signature=origin["value"])

    def _call(self, implementation: Implementation, step: dict[str, Any]) -> Any:
        action, arguments = step["action"], step["args"]
        if action == "issue":
            resources = manifest_from_json(
                {"worker_id": "x", "parent_id": None, "depth": 0, "state_snapshot": {},
                 "issued_at": step["at"], "resources": arguments["resources"], "signature": ""}
            ).resources  # fmt: skip
            return implementation.issue(
                arguments["parent_id"], arguments["worker_id"], resources,
                arguments["state_snapshot"],
            )  # fmt: skip
        if action in {"register", "launch"}:
            manifest = self._manifest(implementation, arguments)
            return getattr(implementation, action)(manifest)
        if action == "reap":
            return implementation.reap(timedelta(seconds=arguments["timeout_seconds"]))
        if action in {"kill_switch", "expire"}:
            return getattr(implementation, action)()
        return getattr(implementation, action)(arguments["worker_id"])

    def scenario(self, directory: Path, name: str) -> None:
        scenario = _load(directory, name, "scenario")
        now = {"value": parse_time(scenario["start"])}
        where = name.removeprefix("scenarios/")
        try:
            implementation = self.watchdog.call(lambda: "factory()", self.adapter.factory)
            self.watchdog.call(
                lambda: "start(contract, key, clock)",
                implementation.start,
                contract_from_json(scenario["contract"]),
                SigningKey.from_seed(bytes.fromhex(scenario["key_seed"])),
                lambda: now["value"],
            )
        except (Exception, CallTimeout) as error:  # noqa: BLE001 - reported as a failure
            self.result.failures.append(f"{where} start: {_raised(error)}")
            return
        steps = scenario["steps"]
        self.issued = {}
        for number, step in enumerate(steps):
            gap = _gap_of(step, self.adapter.gaps)
            if gap is not None:
                self.result.skipped[name] = (number, len(steps) - number, gap)
                return
            now["value"] = parse_time(step["at"])
            if not self._step(implementation, step, number, f"{where} step {number} "
                              f"({step['action']})"):  # fmt: skip
                return

    def _step(
        self, implementation: Implementation, step: dict[str, Any], number: int, where: str
    ) -> bool:
        expect, result = step["expect"], self.result
        returned, decision, reason = None, "allowed", None
        try:
            returned = self.watchdog.call(lambda: step["action"], self._call, implementation, step)
        except Denied as denied:
            decision, reason = "denied", denied.reason
        except ReplicationDenied as denied:
            decision, reason = "denied", denied.reason.value
        except (Exception, CallTimeout) as error:  # noqa: BLE001 - reported as a failure
            result.failures.append(f"{where}: {_raised(error)}")
            return False
        result.steps += 1
        if (decision, reason) != (expect["decision"], expect["reason"]):
            result.failures.append(
                f"{where}: expected "
                f"{decision_text(expect['decision'] == 'allowed', expect['reason'])}, "
                f"got {decision_text(decision == 'allowed', reason)}"
            )
            return False
        if step["action"] == "issue" and returned is not None:
            if not isinstance(returned, Manifest):
                message = (
                    f"issue() must return the signed Manifest when it allows, got {returned!r}"
                )
                raise SetupError(message)
            self.issued[number] = returned
            got = manifest_to_json(returned)
            want = expect.get("manifest") or {}
            if self.adapter.signs:  # another scheme: the fields must agree, not the signature
                got, want = {**got, "signature": ""}, {**want, "signature": ""}
            if got != want:
                result.failures.append(f"{where}: the issued manifest differs")
                return False
        try:
            observed = checked_observation(self.watchdog.call(lambda: "observe()",
                                                              implementation.observe))  # fmt: skip
        except ContractViolation as violation:
            raise SetupError(violation.message) from None
        except (Exception, CallTimeout) as error:  # noqa: BLE001 - reported as a failure
            result.failures.append(f"{where} observe(): {_raised(error)}")
            return False
        expected = observation_from_json(expect["observation"])
        observed = _without_manifests(observed)
        self.reporting.learn(expected, observed)
        differences = compare_observations(
            expected, observed, reported=self.reporting.reported, signatures=not self.adapter.signs
        )
        if differences:
            result.failures.append(f"{where}: {'; '.join(differences)}")
            return False
        return True


def _raised(error: BaseException) -> str:
    if isinstance(error, CallTimeout):
        return str(error)
    lines = locate(error)
    where = f" ({lines[0]})" if lines else ""
    return f"raised {type(error).__name__}: {error}{where}"


def check_vectors(
    directory: Path, adapter: Adapter | Callable[[], Implementation] | None = None
) -> VectorCheck:
    """Verify a vector directory, and replay its scenarios against ``adapter`` if given.

    Raises :class:`VectorError` when the directory cannot be used, and
    :class:`~replication.conformance.adapters.preflight.SetupError` when the adapter cannot.
    Ctrl-C during the replay ends it with the result so far (``interrupted``).
    """
    directory = Path(directory)
    if not directory.is_dir():
        reason = "not a directory" if directory.exists() else "no such directory"
        raise VectorError(f"{directory}: {reason}")
    result = VectorCheck(directory=str(directory))
    scenario_files = _check_index(directory, result)
    result.files = len(scenario_files) + 2
    _check_signing(directory, result)
    _check_secret_migration(directory, result)
    if adapter is None:
        return result
    # Ctrl-C told from the adapter's own KeyboardInterrupt, which is its failure.
    with Watchdog(REPLAY_TIMEOUT) as watchdog, watchdog.handling_ctrl_c():
        loaded = (
            adapter if isinstance(adapter, Adapter) else load_adapter(adapter, watchdog=watchdog)
        )
        result.gaps = tuple(sorted(loaded.gaps))
        result.scenarios = len(scenario_files)
        replay = _Replay(loaded, watchdog, result)
        try:
            for name in scenario_files:
                replay.scenario(directory, name)
                result.replayed += 1
        except KeyboardInterrupt:
            # Ctrl-C: what was replayed stands, and the report says where it stopped.
            result.interrupted = True
    return result
