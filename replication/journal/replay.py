"""Replay: decide every recorded step again and check it is what was recorded.

Two readers share this: a journal's rows (:class:`Replay`, which also checks
the hash chain, the order of ``now`` and the checkpoints) and a trace's steps
(:mod:`replication.journal.trace`). A step is an action, its arguments, its
``now`` and its recorded outcome: the decision (``allowed`` or ``denied``),
the reason code of a denial, the audit events (compared without their
``detail``, which is for humans only, R-AUDIT-1) and, for an allowed
``issue_manifest``, the manifest, whose signature must be the controller's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from replication.encoding import format_timestamp
from replication.errors import InvalidInputError
from replication.journal import chain
from replication.journal.actions import Issued, check_issued_signature, decide_recorded
from replication.journal.codec import (
    ACTION_ARGUMENTS,
    decode_arguments,
    event_to_json,
    parse_time,
    same_events,
)
from replication.journal.errors import JournalCorruptError
from replication.journal.schema import load_json, same_json, step_problem

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from replication.journal.store import Checkpoint, Row
    from replication.model import Manifest, State
    from replication.signing import SigningKey, VerifyingKey

__all__ = [
    "ROW_KEYS",
    "Divergence",
    "Head",
    "Manifests",
    "Replay",
    "describe_outcome",
    "expected_outcome",
    "load_json",
    "step",
]

ROW_KEYS = ("action", "args", "now", "outcome", "prev", "sequence")
_ROW_KEY_SET = frozenset(ROW_KEYS)
_OUTCOME_KEYS = frozenset({"decision", "events", "reason"})
_ISSUE_OUTCOME_KEYS = _OUTCOME_KEYS | {"manifest"}
#: What a trace must record of an outcome; the events and the manifest may be left out.
_TRACE_OUTCOME_KEYS = frozenset({"decision", "reason"})
#: The actions whose denial changes nothing (``decide`` gives no state): every one
#: but ``start_worker``, whose refused launch releases the registration it made.
_DENIAL_CHANGES_NOTHING = frozenset(ACTION_ARGUMENTS) - {"start_worker"}


class Head(NamedTuple):
    """Where a journal ends: its last row's sequence number, hash and ``now``."""

    sequence: int
    hash: str
    now: datetime | None


class Divergence(Exception):  # noqa: N818 - a finding, not a failure of the code
    """A step whose recorded outcome is not the one the model gives.

    ``problem`` says how they differ; ``expected`` is the model's outcome, in
    the recorded form (``None`` when the model refuses the step's arguments).
    """

    def __init__(self, problem: str, expected: dict[str, Any] | None = None) -> None:
        self.problem = problem
        self.expected = expected
        super().__init__(problem)


def expected_outcome(issued: Issued) -> dict[str, Any]:
    """Return the outcome the model gives, in the recorded form."""
    decision = issued.decision
    denial = decision.denial
    outcome: dict[str, Any] = {
        "decision": "allowed" if denial is None else "denied",
        "events": [event_to_json(event) for event in decision.events],
        "reason": None if denial is None else denial.reason.value,
    }
    if issued.manifest is not None:
        outcome["manifest"] = {**(issued.body or {}), "signature": issued.manifest.signature}
    return outcome


def describe_outcome(outcome: dict[str, Any]) -> str:
    """Return a decision in words: ``allowed``, or ``denied (reason: detail)``."""
    if outcome["decision"] == "allowed":
        return "allowed"
    details = [event["detail"] for event in outcome["events"] if not event["allowed"]]
    return f"denied ({outcome['reason']}{': ' + details[0] if details and details[0] else ''})"


def _decision_of(issued: Issued) -> tuple[str, str | None]:
    denial = issued.decision.denial
    return ("allowed", None) if denial is None else ("denied", denial.reason.value)


def step(
    state: State,
    action: object,
    now: datetime,
    arguments: object,
    recorded: object,
    *,
    complete: bool = True,
    issuer: SigningKey | None = None,
    manifests: Manifests | None = None,
    at: str | None = None,
) -> tuple[State, Issued]:
    """Decide one recorded step again; raise :class:`Divergence` unless it is what was recorded.

    ``complete`` (a journal's rows) requires the events and the issued
    manifest to be recorded; a trace may leave them out, and what it leaves
    out is not compared. ``issuer``, the controller's signing key if the
    reader holds it, decides ``issue_manifest`` (else a stand-in key does).
    ``manifests`` remembers the manifests of earlier steps, so that one
    registered or launched again is the same object, not built anew (its signed
    bytes are cached on it). Returns the state after the step and the decision.
    """
    if type(action) is not str or action not in ACTION_ARGUMENTS:
        raise Divergence(f"the model has no action {action!r}")
    try:
        decoded = (manifests or Manifests()).decode(action, arguments)
        issued = decide_recorded(state, action, now, decoded, issuer)
    except InvalidInputError as error:
        raise Divergence(f"the model refuses its arguments as bad input: {error}") from None
    problem = _difference(issued, recorded, state, now, complete=complete, issuer=issuer, at=at)
    if problem is not None:
        raise Divergence(problem, _expected(issued, issuer))
    if manifests is not None and issuer is not None and issued.manifest is not None:
        manifests.remember(issued.manifest, recorded.get("manifest"))  # type: ignore[attr-defined]
    new = issued.decision.state
    return (state if new is None else new), issued


class Manifests:
    """The manifests replay has built, by worker id, with the JSON each was read from.

    A manifest is issued, registered and launched in three steps, and each
    records it; building it once and comparing the JSON after saves its
    canonical encoding (a third of a registration's replay). Bounded: it
    forgets everything past ``limit`` entries.
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._known: dict[object, tuple[object, Manifest]] = {}

    def remember(self, manifest: Manifest, recorded: object) -> None:
        """Keep ``manifest``, read from (or recorded as) ``recorded``."""
        if len(self._known) >= self.limit:
            self._known.clear()
        self._known[manifest.worker_id] = (recorded, manifest)

    def decode(self, action: str, arguments: object) -> dict[str, Any]:
        """Decode an action's arguments, reusing a known manifest recorded identically."""
        if type(arguments) is dict and "manifest" in arguments and len(arguments) == 1:
            recorded = arguments["manifest"]
            if type(recorded) is dict:
                known = self._known.get(recorded.get("worker_id"))
                if known is not None and same_json(known[0], recorded):
                    return {"manifest": known[1]}
                decoded = decode_arguments(action, arguments)
                self.remember(decoded["manifest"], recorded)
                return decoded
        return decode_arguments(action, arguments)


def _expected(issued: Issued, issuer: SigningKey | None) -> dict[str, Any]:
    expected = expected_outcome(issued)
    if "manifest" in expected and issuer is None:
        # Without the controller's private key, the model cannot tell which signature
        # the controller makes; it only checks one (R-JOURNAL-9).
        expected["manifest"]["signature"] = None
    return expected


def _difference(
    issued: Issued,
    recorded: object,
    state: State,
    now: datetime,
    *,
    complete: bool,
    issuer: SigningKey | None,
    at: str | None,
) -> str | None:
    """Return how ``recorded`` differs from the model's decision, or ``None``.

    ``at`` is ``now`` as the step recorded it, if the caller has it.
    """
    decision, reason = _decision_of(issued)
    gives_manifest = issued.manifest is not None
    if type(recorded) is not dict:
        return "its outcome is not an object"
    allowed_keys = _ISSUE_OUTCOME_KEYS if gives_manifest else _OUTCOME_KEYS
    required = allowed_keys if complete else _TRACE_OUTCOME_KEYS
    if not required <= recorded.keys() <= allowed_keys:
        names = ", ".join(sorted(required))
        return f"its outcome must hold {names} (and nothing the model does not give)"
    said = (recorded["decision"], recorded["reason"])
    if said != (decision, reason):
        shown = "allowed" if said[0] == "allowed" else f"{said[0]} ({said[1]})"
        return f"recorded {shown}, the model gives {describe_outcome(expected_outcome(issued))}"
    at = at or format_timestamp(now)
    if "events" in recorded and not same_events(
        recorded["events"], issued.decision.events, now, at
    ):
        return "its events are not the model's"
    if "manifest" in recorded:
        manifest = recorded["manifest"]
        if type(manifest) is not dict or not same_json(
            {key: value for key, value in manifest.items() if key != "signature"}, issued.body
        ):
            return "its issued manifest is not the one the model issues"
        return check_issued_signature(issued, manifest.get("signature"), state, issuer)
    return None


class Replay:
    """Checks a journal's rows and checkpoints in order, applying each to the state.

    ``genesis`` is the header's hash, ``checkpoint_key`` the key checkpoints
    verify under, ``interval`` the rows between checkpoints.
    """

    def __init__(
        self,
        path: str,
        genesis: str,
        checkpoint_key: VerifyingKey,
        interval: int,
        *,
        issuer: SigningKey | None = None,
        strict: bool = True,
    ) -> None:
        self.path = path
        self.genesis = genesis
        self.checkpoint_key = checkpoint_key
        self.interval = interval
        self.issuer = issuer
        # A strict reader refuses duplicate keys; the plain one (a controller
        # replaying its own journal, every row under the chain) is four times faster.
        self._strict = strict
        self._manifests = Manifests()
        self.digests: chain.Digests = {}

    def start(self) -> Head:
        """Return the head of an empty journal."""
        return Head(0, self.genesis, None)

    def _corrupt(self, sequence: int, problem: str) -> JournalCorruptError:
        return JournalCorruptError(self.path, sequence, problem)

    def apply(
        self, state: State, head: Head, row: Row, *, audit: bool = True
    ) -> tuple[State, Head]:
        """Check that ``row`` follows ``head`` and replays as recorded; return state and head.

        Without ``audit`` (a running controller catching up on rows other
        controllers appended, R-JOURNAL-22), a denial that changes nothing is
        checked as a row of the chain and a step of the schema, and not
        decided again: the state it leads to is the one before it.
        """
        sequence = head.sequence + 1
        if row.sequence != sequence:
            raise self._corrupt(sequence, f"is missing (the next row stored is {row.sequence})")
        if type(row.body) is not bytes or type(row.hash) is not str:
            raise self._corrupt(
                sequence, "is not stored as a row is (its body bytes, its hash text)"
            )
        if chain.digest(chain.ROW_TYPE, row.body) != row.hash:
            raise self._corrupt(sequence, "its hash does not match its bytes")
        try:
            body = load_json(row.body, strict_keys=self._strict)
        except ValueError as error:
            raise self._corrupt(sequence, f"is not strict JSON ({error})") from None
        if type(body) is not dict or body.keys() != _ROW_KEY_SET:
            raise self._corrupt(sequence, f"is not an object with exactly {', '.join(ROW_KEYS)}")
        if body["sequence"] != sequence or type(body["sequence"]) is not int:
            raise self._corrupt(sequence, f"records sequence {body['sequence']!r}")
        if body["prev"] != head.hash:
            previous = "the header" if head.sequence == 0 else f"row {head.sequence}"
            raise self._corrupt(
                sequence,
                f"does not follow {previous}: it names {body['prev']!r} as the hash before it, "
                f"which is {head.hash}",
            )
        problem = step_problem(body)
        if problem is not None:
            raise self._corrupt(sequence, f"is not a step of the trace format: {problem}")
        try:
            now = parse_time("now", body["now"])
        except InvalidInputError as error:
            raise self._corrupt(sequence, str(error)) from None
        if head.now is not None and now < head.now:
            raise self._corrupt(
                sequence, f"its now {body['now']} is earlier than row {head.sequence}'s"
            )
        if (
            not audit
            and body["outcome"]["decision"] == "denied"
            and body["action"] in _DENIAL_CHANGES_NOTHING
        ):
            return state, Head(sequence, row.hash, now)
        try:
            state, _ = step(
                state,
                body["action"],
                now,
                body["args"],
                body["outcome"],
                issuer=self.issuer,
                manifests=self._manifests,
                at=body["now"],
            )
        except Divergence as divergence:
            raise self._corrupt(sequence, f"{body['action']}: {divergence.problem}") from None
        return state, Head(sequence, row.hash, now)

    def check_checkpoint(self, state: State, head: Head, checkpoint: Checkpoint | None) -> None:
        """Check the checkpoint stored at ``head`` (``None``: none is), with ``state`` after it."""
        due = head.sequence % self.interval == 0
        if checkpoint is None:
            if due:
                raise self._corrupt(
                    head.sequence, f"has no checkpoint, and one is due every {self.interval} rows"
                )
            return
        if not due:
            raise self._corrupt(
                head.sequence, f"has a checkpoint, but checkpoints are every {self.interval} rows"
            )
        expected = chain.checkpoint_body(
            self.genesis, head.sequence, head.hash, chain.fingerprint(state, self.digests)
        )
        if checkpoint.body != expected:
            raise self._corrupt(
                head.sequence,
                "its checkpoint does not match: "
                f"{_checkpoint_difference(checkpoint.body, expected)}",
            )
        if not chain.is_valid_checkpoint(expected, checkpoint.signature, self.checkpoint_key):
            raise self._corrupt(
                head.sequence,
                "its checkpoint's signature does not verify under the journal's checkpoint key "
                f"{self.checkpoint_key.key_id}",
            )

    def check_no_checkpoint_beyond(self, head: Head, checkpoints: Iterable[int]) -> None:
        """Refuse checkpoints of rows that are not there: the journal lost its tail."""
        beyond = sorted(sequence for sequence in checkpoints if sequence > head.sequence)
        if beyond:
            raise self._corrupt(
                head.sequence + 1,
                f"is missing: the journal ends at row {head.sequence}, and a checkpoint "
                f"covers row {beyond[-1]}",
            )


def _checkpoint_difference(stored: bytes, expected: bytes) -> str:
    try:
        found = load_json(stored)
    except (ValueError, UnicodeDecodeError):
        return "it is not JSON"
    wanted = load_json(expected)
    if type(found) is not dict:
        return "it is not an object"
    names = {"head": "the chain's head", "state": "the state's fingerprint", "journal": "genesis"}
    for key, name in names.items():
        if found.get(key) != wanted[key]:
            return f"it records {name} {found.get(key)!r}, replay gives {wanted[key]!r}"
    return "its bytes are not the canonical ones"
