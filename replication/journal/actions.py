"""Deciding a recorded action again: the action table of replay and trace checking.

Each action a journal records (and a trace may hold) is decided here from its
decoded arguments exactly as the facade decides it (:mod:`replication.decisions`),
so replay and the live controller cannot disagree on the rules.

``issue_manifest`` needs a signing key. A controller replaying its own journal
holds it, decides with it, and compares the signature it makes with the one
recorded (Ed25519 is deterministic). A verifier holds only the public key: it
decides with a stand-in key put in the place of the controller's in a copy of
the state: no rule of ``issue_manifest`` reads the key except to
check that it is the controller's, so the decision, the new state (with the
real key put back) and the manifest's body are the ones the controller's key
gives. The recorded signature is then checked over that body under the real
verifying key: Ed25519 is deterministic, so it is the signature the
controller made, or a forgery.
"""

from __future__ import annotations

import hashlib
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from replication import transitions
from replication._outcome import with_field
from replication.decisions import Decision, decide, decide_on_containers, decide_start
from replication.encoding import manifest_body
from replication.errors import BadSignatureError
from replication.model import _compose
from replication.signing import SigningKey, parse_signature

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from datetime import datetime

    from replication.model import Manifest, State

__all__ = ["ACTIONS", "Issued", "decide_recorded"]

#: Stands in for the controller's key when ``issue_manifest`` is decided again.
#: Its private key is public by construction: it signs nothing anyone verifies.
_STAND_IN = SigningKey.from_seed(hashlib.sha256(b"replication.journal.stand-in.v1").digest())


def _start(state: State, now: datetime, arguments: Mapping[str, Any]) -> Decision:
    return decide_start(state, now, arguments["manifest"])


#: Action name -> how to decide it from its decoded keyword arguments.
ACTIONS: dict[str, Callable[[State, datetime, Mapping[str, Any]], Decision]] = {
    **{
        name: partial(decide, getattr(transitions, name))
        for name in (
            "may_spawn", "register_worker", "launch_worker", "heartbeat", "release_worker",
            "enforce_resource_bounds", "kill_worker", "deregister_worker",
            "quarantine_worker", "engage_kill_switch", "reap_stale_workers",
            "expire_workers",
        )
    },
    **{
        name: partial(decide_on_containers, getattr(transitions, name))
        for name in ("kill_container", "kill_all_containers", "enforce_container_bounds")
    },
    "start_worker": _start,
}  # fmt: skip


class Issued(NamedTuple):
    """What deciding ``issue_manifest`` again gives: the decision, and the manifest's body."""

    decision: Decision
    body: dict[str, Any] | None
    manifest: Manifest | None


def _issue(state: State, now: datetime, arguments: Mapping[str, Any]) -> Issued:
    """Decide ``issue_manifest`` with the stand-in key; the manifest's body is the real one's."""
    real = state.controller.verifying_key
    shadow = _compose(
        with_field(state.controller, "verifying_key", _STAND_IN.verifying_key), state.orchestrator
    )
    decision = decide(transitions.issue_manifest, shadow, now, {**arguments, "key": _STAND_IN})
    if decision.state is None:
        return Issued(decision, None, None)
    new = decision.state
    restored = _compose(with_field(new.controller, "verifying_key", real), new.orchestrator)
    manifest = decision.outcome.manifest
    return Issued(decision._replace(state=restored), manifest_body(manifest), manifest)


def check_issued_signature(
    issued: Issued, signature: object, state: State, issuer: SigningKey | None
) -> str | None:
    """Return why ``signature`` is not the controller's over the issued manifest, or ``None``."""
    if issued.manifest is None:
        return None
    if issuer is not None:
        if signature == issued.manifest.signature:
            return None
        return "the issued manifest's signature is not the one the controller makes"
    if type(signature) is not str:
        return f"the issued manifest's signature is not a string: {signature!r}"
    try:
        _, raw = parse_signature(signature)
        state.controller.verifying_key.verify(raw, issued.manifest.signing_payload)
    except BadSignatureError as error:
        return f"the issued manifest's signature is not the controller's ({error})"
    return None


def decide_recorded(
    state: State,
    action: str,
    now: datetime,
    arguments: Mapping[str, Any],
    issuer: SigningKey | None = None,
) -> Issued:
    """Decide a recorded action again; ``issue_manifest`` with ``issuer`` or the stand-in key."""
    if action != "issue_manifest":
        return Issued(ACTIONS[action](state, now, arguments), None, None)
    if issuer is None:
        return _issue(state, now, arguments)
    decision = decide(transitions.issue_manifest, state, now, {**arguments, "key": issuer})
    manifest = None if decision.state is None else decision.outcome.manifest
    return Issued(decision, None if manifest is None else manifest_body(manifest), manifest)
