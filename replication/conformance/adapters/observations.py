"""What ``observe()`` must return, checked and made exact; and two observations compared.

An adapter's :meth:`~replication.conformance.adapters.adapter.Implementation.observe`
returns an :class:`~replication.invariants.Observation`. :func:`checked_observation`
checks every field's type, with a message saying what the protocol expects,
and rebuilds it from exact built-in types (a ``str`` subclass can lie about
its equality and hash). :class:`Reporting` knows which optional fields the
implementation reports: those it declares in ``unreported`` are never
compared; the others are compared whenever the reference has a value, so a
``None`` where the reference has a time is a divergence, not "not reported".
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attrs

from replication.conformance.adapters.calls import ContractViolation
from replication.encoding import manifest_body
from replication.invariants import Observation, WorkerView
from replication.model import Manifest

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "OPTIONAL_FIELDS",
    "Reporting",
    "checked_observation",
    "compare_observations",
    "qualified",
    "reported_fields",
]

#: The optional fields of a worker's view: ``None`` may mean "not reported".
WORKER_FIELDS = ("registered_at", "last_heartbeat", "last_child_registered_at", "manifest")
#: The optional fields of a whole observation.
FLEET_FIELDS = ("quarantined", "registered_ever")
#: Every optional field an adapter may declare in ``unreported``.
OPTIONAL_FIELDS = frozenset(WORKER_FIELDS + FLEET_FIELDS)
#: Reported only by implementations with real processes, and never compared: the
#: reference has no processes. INV-PROCESSES checks it (``n/a`` when never reported).
PROCESS_FIELD = "live_processes"


def reported_fields(observation: Observation) -> frozenset[str]:
    """Return the optional fields ``observation`` carries a value in."""
    found = {
        name for name in (*FLEET_FIELDS, PROCESS_FIELD) if getattr(observation, name) is not None
    }
    for view in observation.workers.values():
        found.update(name for name in WORKER_FIELDS if getattr(view, name) is not None)
    return frozenset(found)


def qualified(field: str) -> str:
    """Return ``WorkerView.x`` or ``Observation.x``: where an optional field lives."""
    return f"{'WorkerView' if field in WORKER_FIELDS else 'Observation'}.{field}"


# -- checking what observe() returned ------------------------------------------------------------


def _fail(field: str, expected: str, value: object) -> ContractViolation:
    got = f"{value!r} ({type(value).__name__})"
    if len(got) > 100:
        got = f"a {type(value).__name__}"
    return ContractViolation(f"observe() must return {field} as {expected}, got {got}")


def _text(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise _fail(field, "a str", value)
    # str.__str__ returns an exact str, whatever a subclass overrides.
    return str.__str__(value)


def _ids(field: str, value: object) -> frozenset[str]:
    if type(value) is frozenset and all(type(item) is str for item in value):
        return value
    if isinstance(value, str | bytes) or not isinstance(value, Set):
        raise _fail(field, "a set or frozenset of worker ids", value)
    return frozenset(_text(f"{field} items", item) for item in value)


def _time(field: str, value: object) -> datetime | None:
    if value is None or (type(value) is datetime and value.tzinfo is UTC):
        return value
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise _fail(field, "a timezone-aware datetime or None", value)
    offset = value.utcoffset()
    assert offset is not None  # noqa: S101 - checked above
    naive = datetime(  # noqa: DTZ001 - made aware (UTC) on the next line
        value.year, value.month, value.day, value.hour, value.minute, value.second,
        value.microsecond,
    ) - offset  # fmt: skip
    return naive.replace(tzinfo=UTC)


def _exact(view: WorkerView, key: str) -> bool:
    """Whether ``view`` is already made of exact types (the common case: nothing to rebuild)."""
    return (
        type(view) is WorkerView
        and type(view.worker_id) is str
        and view.worker_id == key
        and (view.parent_id is None or type(view.parent_id) is str)
        and type(view.depth) is int
        and all(
            moment is None or (type(moment) is datetime and moment.tzinfo is UTC)
            for moment in (view.registered_at, view.last_heartbeat, view.last_child_registered_at)
        )
        and (view.manifest is None or type(view.manifest) is Manifest)
    )


def _worker(key: str, view: object) -> WorkerView:
    if isinstance(view, WorkerView) and _exact(view, key):
        return view
    field = f"workers[{key!r}]"
    if not isinstance(view, WorkerView):
        raise _fail(field, "a WorkerView (replication.invariants)", view)
    worker_id = _text(f"{field}.worker_id", view.worker_id)
    if worker_id != key:
        raise _fail(f"{field}.worker_id", f"the key it is filed under ({key!r})", worker_id)
    parent_id = view.parent_id
    if parent_id is not None:
        parent_id = _text(f"{field}.parent_id", parent_id)
    depth = view.depth
    if isinstance(depth, bool) or not isinstance(depth, int):
        raise _fail(f"{field}.depth", "an int", depth)
    manifest = view.manifest
    if manifest is not None and not isinstance(manifest, Manifest):
        raise _fail(f"{field}.manifest", "a Manifest or None", manifest)
    return WorkerView(
        worker_id,
        parent_id,
        int.__int__(depth),
        registered_at=_time(f"{field}.registered_at", view.registered_at),
        last_heartbeat=_time(f"{field}.last_heartbeat", view.last_heartbeat),
        last_child_registered_at=_time(
            f"{field}.last_child_registered_at", view.last_child_registered_at
        ),
        manifest=manifest,
    )


def checked_observation(value: object) -> Observation:
    """Return ``value`` rebuilt from exact types, or raise :class:`ContractViolation`."""
    if not isinstance(value, Observation):
        raise ContractViolation(
            "observe() must return a replication.invariants.Observation, "
            f"got {type(value).__name__}"
            + (f" {value!r}" if value is None or isinstance(value, bool | int) else "")
        )
    workers = value.workers
    if not isinstance(workers, Mapping):
        raise _fail("workers", "a mapping of worker id to WorkerView", workers)
    checked = {
        key if type(key) is str else _text("workers keys", key): view
        for key, view in workers.items()
    }
    if not isinstance(value.kill_switch_engaged, bool):
        raise _fail("kill_switch_engaged", "a bool", value.kill_switch_engaged)
    quarantined, ever, live = value.quarantined, value.registered_ever, value.live_processes
    return Observation(
        {key: _worker(key, view) for key, view in checked.items()},
        _ids("containers", value.containers),
        value.kill_switch_engaged is True,
        quarantined=None if quarantined is None else _ids("quarantined", quarantined),
        registered_ever=None if ever is None else _ids("registered_ever", ever),
        live_processes=None if live is None else _ids("live_processes", live),
    )


# -- which optional fields are reported ------------------------------------------------------


class Reporting:
    """Which optional fields an implementation reports.

    Declared (the adapter's ``unreported``), or, for an adapter that declares
    nothing, learnt at first sight: the first time the reference has a value
    for a field that the implementation could report, a value means "reported"
    and ``None`` means "unreported", for the rest of the run.
    """

    def __init__(self, unreported: Iterable[str] | None) -> None:
        self.declared = unreported is not None
        self.decided: dict[str, bool] = (
            {name: name not in frozenset(unreported) for name in OPTIONAL_FIELDS}
            if unreported is not None
            else {}
        )

    @property
    def reported(self) -> frozenset[str]:
        """The optional fields compared even when the implementation says ``None``."""
        return frozenset(name for name, yes in self.decided.items() if yes)

    @property
    def unseen(self) -> frozenset[str]:
        """The optional fields not yet decided: the reference never had a value to compare."""
        return OPTIONAL_FIELDS - self.decided.keys()

    @property
    def unreported(self) -> frozenset[str]:
        """The optional fields never compared when ``None``: declared, learnt or unseen."""
        return OPTIONAL_FIELDS - self.reported

    def learn(self, expected: Observation, got: Observation) -> None:
        """Decide every field not yet decided that this pair of observations shows."""
        if self.declared or len(self.decided) == len(OPTIONAL_FIELDS):
            return
        for name in FLEET_FIELDS:
            if name not in self.decided and getattr(expected, name):
                self.decided[name] = getattr(got, name) is not None
        for worker_id in expected.workers.keys() & got.workers.keys():
            want, have = expected.workers[worker_id], got.workers[worker_id]
            for name in WORKER_FIELDS:
                if name not in self.decided and getattr(want, name) is not None:
                    self.decided[name] = getattr(have, name) is not None


# -- comparing ---------------------------------------------------------------------------------


def _same_manifest(want: Manifest, have: Manifest, *, signatures: bool) -> bool:
    if signatures:
        return want == have
    return manifest_body(want) == manifest_body(have)


def compare_observations(
    expected: Observation,
    got: Observation,
    *,
    reported: frozenset[str] = frozenset(),
    signatures: bool = True,
) -> list[str]:
    """Return the differences between the reference's observation and an implementation's.

    A value the implementation reports is always compared. A ``None`` is
    compared too for the optional fields in ``reported``, and is "not
    reported" for the others. With ``signatures=False`` (the implementation
    signs with its own scheme) manifests are compared without their signature.
    """
    differences = []
    if expected.kill_switch_engaged != got.kill_switch_engaged:
        differences.append(
            f"kill switch engaged: expected {expected.kill_switch_engaged}, "
            f"got {got.kill_switch_engaged}"
        )
    if set(expected.workers) != set(got.workers):
        differences.append(
            f"registered workers: expected {sorted(expected.workers)}, got {sorted(got.workers)}"
        )
    if expected.containers != got.containers:
        differences.append(
            f"running containers: expected {sorted(expected.containers)}, "
            f"got {sorted(got.containers)}"
        )
    for name in FLEET_FIELDS:
        want, have = getattr(expected, name), getattr(got, name)
        if (have is not None or name in reported) and have != want:
            shown = None if have is None else sorted(have)
            differences.append(f"{name}: expected {sorted(want or ())}, got {shown}")
    for worker_id in sorted(set(expected.workers) & set(got.workers)):
        want_view, have_view = expected.workers[worker_id], got.workers[worker_id]
        for field in attrs.fields(WorkerView):
            want, have = getattr(want_view, field.name), getattr(have_view, field.name)
            unreported = field.name in WORKER_FIELDS and field.name not in reported
            if have is None and unreported:
                continue
            if field.name == "manifest" and want is not None and have is not None:
                if _same_manifest(want, have, signatures=signatures):
                    continue
            elif have == want:
                continue
            differences.append(f"{worker_id}.{field.name}: expected {want!r}, got {have!r}")
    return differences
