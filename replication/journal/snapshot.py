"""Signed snapshots: the whole state after a row, so that a controller starts without replay.

A snapshot is the canonical JSON (RFC 8785) of::

    {"fingerprint": the state's fingerprint (chain.fingerprint),
     "head": the row's hash, "journal": the genesis, "now": the row's now,
     "sequence": the row, "state": the whole state (below)}

signed with the checkpoint key under ``replication.journal.snapshot.v1``. The
state's JSON holds every field of the state, each map as a list sorted by
worker id: ``containers`` (``[worker_id, manifest, resources, status,
started_at, reason]``), ``issued_ids``, ``quarantined``, ``registered_ids``,
``spawn_times`` (``[worker_id, time]``), ``kill_switch_engaged`` and
``registry`` (``[worker_id, manifest, registered_at, last_heartbeat]``), where
a manifest is its JSON form (:func:`~replication.journal.codec.manifest_to_json`).

:func:`make_snapshot` writes one; :func:`read_snapshot` checks one (its
signature, that it is this journal's and names the row it claims, that it
decodes to a state whose fingerprint is the one it records) and returns the
head and state it gives. The specification is specs/07-journal.md, R-JOURNAL-17.
"""

from __future__ import annotations

import json
from functools import partial
from json.encoder import encode_basestring
from typing import TYPE_CHECKING, Any

import immutables

from replication.encoding import format_timestamp, pae
from replication.errors import InvalidInputError, InvalidTypeError, InvalidValueError
from replication.journal import chain
from replication.journal.codec import (
    manifest_from_json,
    manifest_to_json,
    parse_time,
    resources_from_json,
    resources_to_json,
)
from replication.journal.errors import JournalCorruptError
from replication.journal.replay import Head
from replication.journal.schema import canonical_bytes, same_json
from replication.journal.store import Snapshot
from replication.model import (
    ContainerRecord,
    ControllerState,
    Manifest,
    OrchestratorState,
    RegistryEntry,
    ResourceSpec,
    State,
)
from replication.signing import format_signature

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from replication.journal.stores import JournalStore
    from replication.signing import SigningKey, VerifyingKey

__all__ = [
    "DEFAULT_SNAPSHOT_INTERVAL",
    "SNAPSHOT_TYPE",
    "Encoder",
    "check_anchor",
    "make_snapshot",
    "parse_anchor",
    "read_snapshot",
    "snapshot_body",
    "start_from_snapshot",
    "state_from_json",
    "state_to_json",
]

SNAPSHOT_TYPE = "replication.journal.snapshot.v1"
#: Rows between two snapshots a controller writes: a start replays at most this many rows.
DEFAULT_SNAPSHOT_INTERVAL = 1000
_KEYS = ("fingerprint", "head", "journal", "now", "sequence", "state")
_STATE_KEYS = (
    "containers", "issued_ids", "kill_switch_engaged", "quarantined", "registered_ids",
    "registry", "spawn_times",
)  # fmt: skip


def _times(entries: immutables.Map[str, datetime]) -> list[list[str]]:
    return [[key, format_timestamp(entries[key])] for key in sorted(entries)]


def state_to_json(state: State) -> dict[str, Any]:
    """Return the whole state as JSON (the contract and key are the header's, not here)."""
    controller = state.controller
    return {
        "containers": [
            [
                worker_id,
                manifest_to_json(record.manifest),
                resources_to_json(record.resources),
                record.status,
                format_timestamp(record.started_at),
                record.reason,
            ]
            for worker_id, record in sorted(state.orchestrator.containers.items())
        ],
        "issued_ids": _times(controller.issued_ids),
        "kill_switch_engaged": controller.kill_switch_engaged,
        "quarantined": _times(controller.quarantined),
        "registered_ids": _times(controller.registered_ids),
        "registry": [
            [
                worker_id,
                manifest_to_json(entry.manifest),
                format_timestamp(entry.registered_at),
                format_timestamp(entry.last_heartbeat),
            ]
            for worker_id, entry in sorted(controller.registry.items())
        ],
        "spawn_times": _times(controller.spawn_times),
    }


def _list(field: str, value: object, width: int) -> list[list[Any]]:
    if type(value) is not list or any(
        type(item) is not list or len(item) != width for item in value
    ):
        raise InvalidTypeError(field, f"a list of {width}-item lists", type(value).__name__)
    return value


def _time_map(field: str, value: object) -> immutables.Map[str, datetime]:
    return immutables.Map(
        (key, parse_time(f"{field}.{key}", moment)) for key, moment in _list(field, value, 2)
    )


def state_from_json(initial: State, value: object) -> State:
    """Rebuild a state from :func:`state_to_json`'s form, on ``initial``'s contract and key.

    Every record's own checks apply; a bad value raises
    :class:`~replication.errors.InvalidInputError` naming its path.
    """
    if type(value) is not dict or sorted(value) != list(_STATE_KEYS):
        raise InvalidTypeError("state", f"an object with exactly {_STATE_KEYS}", value)
    manifests: dict[str, tuple[object, Manifest]] = {}

    def manifest(field: str, data: object) -> Manifest:
        # One object per worker's manifest, as in the state replay builds.
        worker_id = data.get("worker_id") if type(data) is dict else None
        known = manifests.get(worker_id) if type(worker_id) is str else None
        if known is not None and same_json(known[0], data):
            return known[1]
        decoded = manifest_from_json(field, data)
        manifests[decoded.worker_id] = (data, decoded)
        return decoded

    registry = immutables.Map(
        (
            worker_id,
            RegistryEntry(
                manifest(f"state.registry.{worker_id}", data),
                parse_time(f"state.registry.{worker_id}.last_heartbeat", heartbeat),
                parse_time(f"state.registry.{worker_id}.registered_at", registered),
            ),
        )
        for worker_id, data, registered, heartbeat in _list("state.registry", value["registry"], 4)
    )

    def container(
        worker_id: str, data: object, resources: object, status: object, started: object
    ) -> tuple[Manifest, ResourceSpec, object, datetime]:
        decoded = manifest(f"state.containers.{worker_id}", data)
        field = f"state.containers.{worker_id}"
        # A container's limits are almost always its manifest's: the same object, decoded once.
        same = type(data) is dict and same_json(resources, data.get("resources"))
        limits = decoded.resources if same else resources_from_json(f"{field}.resources", resources)
        return decoded, limits, status, parse_time(f"{field}.started_at", started)

    containers = immutables.Map(
        (
            worker_id,
            ContainerRecord(*container(worker_id, data, resources, status, started), reason),
        )
        for worker_id, data, resources, status, started, reason in _list(
            "state.containers", value["containers"], 6
        )
    )
    engaged = value["kill_switch_engaged"]
    if type(engaged) is not bool:
        raise InvalidTypeError("state.kill_switch_engaged", "a boolean", engaged)
    controller = ControllerState(
        initial.controller.contract,
        initial.controller.verifying_key,
        registry=registry,
        spawn_times=_time_map("state.spawn_times", value["spawn_times"]),
        quarantined=_time_map("state.quarantined", value["quarantined"]),
        issued_ids=_time_map("state.issued_ids", value["issued_ids"]),
        registered_ids=_time_map("state.registered_ids", value["registered_ids"]),
        kill_switch_engaged=engaged,
    )
    return State(controller, OrchestratorState(containers=containers))


class Encoder:
    """Writes a snapshot's canonical bytes, keeping each manifest's bytes between snapshots.

    A manifest's canonical JSON costs most of a snapshot, and most manifests
    outlive many snapshots: its bytes are kept by the manifest's identity (with
    the manifest, so the identity is not reused), for the manifests the last
    snapshot held. Everything else in a state is an id, a reason, a time, a
    boolean or null, whose JSON Python's encoder writes exactly as RFC 8785
    does (see :func:`~replication.journal.chain.fingerprint_bytes`); a test
    compares the bytes with :func:`~replication.encoding.canonical_json`'s.
    """

    def __init__(self) -> None:
        self._known: dict[int, tuple[object, str]] = {}
        self._used: dict[int, tuple[object, str]] = {}

    def _canonical(self, record: object, value: Callable[[], dict[str, Any]]) -> str:
        key = id(record)
        hit = self._known.get(key)
        if hit is not None and hit[0] is record:
            text = hit[1]
        else:
            text = canonical_bytes(value()).decode("utf-8")
        self._used[key] = (record, text)
        return text

    def state(self, state: State) -> str:
        """Return the canonical JSON of :func:`state_to_json`'s form of ``state``."""
        self._used = {}
        controller = state.controller
        containers = ",".join(
            f"[{_string(worker_id)},"
            f"{self._canonical(record.manifest, partial(manifest_to_json, record.manifest))},"
            f"{self._canonical(record.resources, partial(resources_to_json, record.resources))},"
            f"{_string(record.status)},"
            f'"{chain.format_time(record.started_at)}",'
            f"{'null' if record.reason is None else _string(record.reason)}]"
            for worker_id, record in sorted(state.orchestrator.containers.items())
        )
        registry = ",".join(
            f"[{_string(worker_id)},"
            f"{self._canonical(entry.manifest, partial(manifest_to_json, entry.manifest))},"
            f'"{chain.format_time(entry.registered_at)}",'
            f'"{chain.format_time(entry.last_heartbeat)}"]'
            for worker_id, entry in sorted(controller.registry.items())
        )
        self._known = self._used
        return (
            f'{{"containers":[{containers}],'
            f'"issued_ids":{_time_list(controller.issued_ids)},'
            f'"kill_switch_engaged":{"true" if controller.kill_switch_engaged else "false"},'
            f'"quarantined":{_time_list(controller.quarantined)},'
            f'"registered_ids":{_time_list(controller.registered_ids)},'
            f'"registry":[{registry}],'
            f'"spawn_times":{_time_list(controller.spawn_times)}}}'
        )


def _string(text: str) -> str:
    # Ids and reasons hold no control character or lone surrogate (R-ID-1, R-ID-2): for
    # them Python's encoder writes RFC 8785's bytes.
    return encode_basestring(text)


def _time_list(entries: immutables.Map[str, datetime]) -> str:
    items = ",".join(
        f'[{_string(key)},"{chain.format_time(entries[key])}"]' for key in sorted(entries)
    )
    return f"[{items}]"


def snapshot_body(
    genesis: str,
    head: Head,
    state: State,
    *,
    digests: chain.Digests | None = None,
    encoder: Encoder | None = None,
    fingerprint: str | None = None,
) -> bytes:
    """Return the canonical bytes of the snapshot of ``state`` after the row ``head``.

    ``digests`` and ``encoder`` carry what one snapshot computed to the next;
    ``fingerprint``, the state's, if the caller computed it already (for the
    checkpoint of the same row).
    """
    now = "null" if head.now is None else f'"{format_timestamp(head.now)}"'
    state_json = (encoder or Encoder()).state(state)
    if fingerprint is None:
        fingerprint = chain.fingerprint(state, digests)
    text = (
        f'{{"fingerprint":"{fingerprint}","head":{_string(head.hash)},'
        f'"journal":"{genesis}","now":{now},"sequence":{int(head.sequence)},'
        f'"state":{state_json}}}'
    )
    return text.encode("utf-8")


def make_snapshot(
    genesis: str,
    head: Head,
    state: State,
    key: SigningKey,
    *,
    digests: chain.Digests | None = None,
    encoder: Encoder | None = None,
    fingerprint: str | None = None,
) -> Snapshot:
    """Return the signed snapshot of ``state`` after the row ``head`` (see snapshot_body)."""
    body = snapshot_body(
        genesis, head, state, digests=digests, encoder=encoder, fingerprint=fingerprint
    )
    signature = format_signature(key.verifying_key.key_id, key.sign(pae(SNAPSHOT_TYPE, body)))
    return Snapshot(head.sequence, body, signature)


def is_valid_signature(body: bytes, signature: object, key: VerifyingKey) -> bool:
    """Whether ``signature`` is ``key``'s over the snapshot ``body``."""
    return chain.is_valid_signature(SNAPSHOT_TYPE, body, signature, key)


def read_snapshot(
    path: str,
    snapshot: Snapshot,
    genesis: str,
    key: VerifyingKey,
    initial: State,
    *,
    check_fingerprint: bool = True,
) -> tuple[Head, State]:
    """Check a stored snapshot and return the head and the state it gives.

    Raises :class:`JournalCorruptError` naming its row when it is not stored
    as a snapshot is, its signature does not verify under the checkpoint key
    ``key``, it is another journal's or another row's, or its state does not
    decode (or, with ``check_fingerprint``, decodes to a state whose
    fingerprint is not the one it records: what its signature covers is
    enough to trust it, the fingerprint checks the decoding).
    """
    sequence = snapshot.sequence

    def corrupt(problem: str) -> JournalCorruptError:
        return JournalCorruptError(path, sequence, f"its snapshot {problem}")

    if type(snapshot.body) is not bytes or type(sequence) is not int:
        raise corrupt("is not stored as a snapshot is (its body bytes)")
    if not is_valid_signature(snapshot.body, snapshot.signature, key):
        raise corrupt(
            f"does not verify under the journal's checkpoint key {key.key_id}: refused "
            "(a controller does not start on it; journal verify audits every row)"
        )
    try:
        # Signed by the checkpoint key, and canonical: the plain parser is enough (and five
        # times faster on a large state than the strict one, which refuses duplicate keys).
        body = json.loads(snapshot.body)
        if type(body) is not dict or sorted(body) != list(_KEYS):
            raise corrupt(f"is not an object with exactly {', '.join(_KEYS)}")
        if body["journal"] != genesis or body["sequence"] != sequence:
            raise corrupt("is not this journal's snapshot of this row")
        now = None if body["now"] is None else parse_time("now", body["now"])
        state = state_from_json(initial, body["state"])
    except (ValueError, RecursionError, InvalidInputError) as error:
        raise corrupt(f"cannot be read ({error})") from None
    if check_fingerprint and chain.fingerprint(state) != body["fingerprint"]:
        raise corrupt("holds a state whose fingerprint is not the one it records")
    if type(body["head"]) is not str:
        raise corrupt("names no row hash")
    return Head(sequence, body["head"], now), state


# -- starting a controller from a snapshot -------------------------------------------------


def start_from_snapshot(
    store: JournalStore, genesis: str, key: VerifyingKey, initial: State
) -> tuple[Head, State] | None:
    """Return the head and state of the latest snapshot, checked, or ``None`` if none.

    The snapshot must verify (:func:`read_snapshot`) and name the hash the
    journal stores for its row. One that does not refuses the start
    (``JournalCorruptError`` naming its row), never a silent full replay
    (R-JOURNAL-17).
    """
    path = store.path
    store.begin_read()
    try:
        snapshot = store.latest_snapshot()
        if snapshot is None:
            return None
        head, state = read_snapshot(path, snapshot, genesis, key, initial, check_fingerprint=False)
        row = store.row_at(head.sequence)
        if row is None or row.hash != head.hash:
            found = "is missing" if row is None else f"has the hash {row.hash}"
            raise JournalCorruptError(
                path,
                head.sequence,
                f"{found}, and its signed snapshot names the hash {head.hash}: rows were "
                "removed or rewritten",
            )
    finally:
        store.release()
    return head, state


def check_anchor(
    store: JournalStore, anchor: tuple[int, str], head: Head, started_from: int
) -> None:
    """Refuse a journal that does not hold row ``anchor[0]`` with the hash ``anchor[1]``.

    ``head`` is where the journal ends, ``started_from`` the row of the
    snapshot the controller started from: a row after it was replayed, hence
    checked; from the anchored row to it, the hash chain is checked here
    (R-JOURNAL-18).
    """
    path = store.path
    sequence, expected = anchor
    if sequence > head.sequence:
        raise JournalCorruptError(
            path,
            head.sequence + 1,
            f"the journal ends at row {head.sequence}, before row {sequence} the anchor "
            "names: rows were removed from its end, or it is another journal",
        )
    store.begin_read()
    try:
        previous = expected
        rows = store.rows_after(sequence - 1)
        for row in rows:
            if row.sequence > max(sequence, started_from):
                break
            if row.sequence == sequence and row.hash != expected:
                raise JournalCorruptError(
                    path,
                    sequence,
                    f"its hash is {row.hash}, not the anchored {expected}: the journal was "
                    "rewritten from this row on, or is another journal",
                )
            if row.sequence != sequence and _prev(row.body) != previous:
                raise JournalCorruptError(path, row.sequence, "does not follow the row before it")
            if chain.digest(chain.ROW_TYPE, row.body) != row.hash:
                raise JournalCorruptError(path, row.sequence, "its hash does not match its bytes")
            previous = row.hash
        # A generator's statement ends before the read transaction does.
        close = getattr(rows, "close", None)
        if close is not None:
            close()
    finally:
        store.release()


def _prev(body: object) -> object:
    try:
        value = json.loads(body) if type(body) is bytes else None
    except (ValueError, RecursionError):
        return None
    return value.get("prev") if type(value) is dict else None


def parse_anchor(text: object) -> tuple[int, str]:
    """Read a head kept elsewhere, ``SEQUENCE:HASH`` as ``journal verify`` prints it."""
    if type(text) is str:
        sequence, _, digest = text.partition(":")
        if (
            sequence.isdecimal()
            and sequence.isascii()
            and int(sequence) >= 1
            and len(digest) == _DIGEST_LENGTH
            and all(c in "0123456789abcdef" for c in digest)
        ):
            return int(sequence), digest
    raise InvalidValueError(
        "head",
        "SEQUENCE:HASH (a row number >= 1 and its 64 lowercase hex digits, as journal verify "
        "prints them)",
        text,
    )


#: Hex digits of a row's SHA-256 hash.
_DIGEST_LENGTH = 64
