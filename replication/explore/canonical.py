"""The explorer's state identity: what two worlds must share to count as one state.

Without reductions a world's key is everything in it, absolute times
included. Two reductions make the space finite and smaller; each is a
switch, and the tests prove each sound (specs/06-exploration.md):

* **time abstraction** (R-EXPLORE-3): the rules compare a time only with the
  clock, through a contract constant (``now - last_spawn < cooldown``,
  ``now - last_heartbeat > timeout``, ``now - registered_at > expiration``),
  so a world is described by ages in ticks, each capped just past the
  largest boundary it is compared with: worlds that differ by a shift of all
  times, or by ages already beyond every boundary, are one state. Times the
  rules never read (when a worker was quarantined, when an id was issued)
  are left out.
* **symmetry** (R-EXPLORE-4): issued worker ids are names with no meaning
  beyond identity (the next id depends only on how many were issued), so a
  world is described by its lineage forest with the ids erased, in the
  canonical order of Aho, Hopcroft and Ullman's tree encoding: worlds equal
  up to a renaming of ids are one state. :func:`labelling` gives the renaming.

The key is a tuple of plain values; the explorer stores its hash, a 64-bit
fingerprint, as TLC does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from replication.explore.bounds import EPOCH, TICK

if TYPE_CHECKING:
    from collections.abc import Hashable
    from datetime import datetime

    from replication.explore.actions import World
    from replication.explore.bounds import Bound

__all__ = ["Reductions", "labelling", "state_key"]


class Reductions(NamedTuple):
    """Which reductions are on, and the age caps the bound implies for the time abstraction."""

    time: bool
    symmetry: bool
    heartbeat_cap: int
    registered_cap: int
    spawn_cap: int

    @classmethod
    def of(cls, bound: Bound, *, time: bool = True, symmetry: bool = True) -> Reductions:
        """Return the reductions for ``bound``.

        A heartbeat is stale once its age exceeds the timeout, a registration
        expires once its age exceeds the expiration, and a spawn stops blocking
        once its age reaches the cooldown: every age beyond those is equivalent.
        Without an expiration, registration ages are never read at all.
        """
        return cls(
            time=time,
            symmetry=symmetry,
            heartbeat_cap=bound.heartbeat_timeout + 1,
            registered_cap=-1 if bound.expiration is None else bound.expiration + 1,
            spawn_cap=bound.cooldown,
        )


# Keys are sorted, so every part of a colour is an int or a str: "absent" is -1.
_ABSENT = -1


def _ticks(moment: datetime | None) -> int:
    """Return an absolute time as ticks since the epoch (no reduction)."""
    return _ABSENT if moment is None else (moment - EPOCH) // TICK


def _colours(world: World, reductions: Reductions) -> dict[str, tuple[object, ...]]:
    """Return what each issued id's worker is, without its id and its lineage.

    Pending, registered or gone; for a registered worker whether it holds the
    manifest issued for it, and the ages (in ticks, capped) of its last
    heartbeat and of its registration (when an expiration makes it matter);
    then whether it is quarantined, the age of its last child's registration,
    its depth, whether it asked for external network, and whether a container
    runs (and with that manifest). Without the time abstraction, every
    absolute time the core holds instead of the ages.
    """
    if not reductions.time:
        return _exact_colours(world)
    state, now = world.state, world.now
    controller = state.controller
    registry, ever = controller.registry, controller.registered_ids
    containers, quarantined = state.orchestrator.containers, controller.quarantined
    spawn_times = controller.spawn_times
    heartbeat_cap, registered_cap, spawn_cap = (
        reductions.heartbeat_cap,
        reductions.registered_cap,
        reductions.spawn_cap,
    )
    colours: dict[str, tuple[object, ...]] = {}
    for manifest in world.manifests:
        worker_id = manifest.worker_id
        entry = registry.get(worker_id)
        if entry is None:
            status: tuple[object, ...] = ("gone",) if worker_id in ever else ("pending",)
        else:
            heartbeat = min((now - entry.last_heartbeat) // TICK, heartbeat_cap)
            registered = (
                _ABSENT
                if registered_cap < 0
                else min((now - entry.registered_at) // TICK, registered_cap)
            )
            status = ("registered", entry.manifest is manifest, heartbeat, registered)
        spawn = spawn_times.get(worker_id)
        record = containers.get(worker_id)
        colours[worker_id] = (
            *status,
            worker_id in quarantined,
            _ABSENT if spawn is None else min((now - spawn) // TICK, spawn_cap),
            manifest.depth,
            manifest.resources.network_policy.allow_external,
            _ABSENT if record is None else record.manifest is manifest,
        )
    return colours


def _exact_colours(world: World) -> dict[str, tuple[object, ...]]:
    """:func:`_colours` without the time abstraction: every time as ticks since the epoch."""
    state = world.state
    controller = state.controller
    registry, ever = controller.registry, controller.registered_ids
    containers, quarantined = state.orchestrator.containers, controller.quarantined
    colours: dict[str, tuple[object, ...]] = {}
    for manifest in world.manifests:
        worker_id = manifest.worker_id
        entry = registry.get(worker_id)
        record = containers.get(worker_id)
        colours[worker_id] = (
            entry is not None,
            entry is not None and entry.manifest is manifest,
            _ticks(entry.last_heartbeat if entry is not None else None),
            _ticks(entry.registered_at if entry is not None else None),
            _ticks(ever.get(worker_id)),
            _ticks(quarantined.get(worker_id)),
            _ticks(controller.spawn_times.get(worker_id)),
            _ticks(manifest.issued_at),
            _ticks(controller.issued_ids.get(worker_id)),
            manifest.depth,
            manifest.resources.network_policy.allow_external,
            _ABSENT if record is None else record.manifest is manifest,
            _ticks(record.started_at if record is not None else None),
        )
    return colours


def _foreign(world: World, issued: dict[str, tuple[object, ...]]) -> tuple[object, ...]:
    """Return whatever the core holds about ids the explorer never issued (nothing, if correct)."""
    state = world.state
    controller = state.controller
    tables = (
        controller.registry,
        state.orchestrator.containers,
        controller.quarantined,
        controller.spawn_times,
        controller.registered_ids,
        controller.issued_ids,
    )
    known = issued.__contains__
    for table in tables:
        if not all(map(known, table)):
            break
    else:
        return ()
    ids = sorted({worker_id for table in tables for worker_id in table if worker_id not in issued})
    return tuple((worker_id, *(worker_id in table for table in tables)) for worker_id in ids)


class _Forest(NamedTuple):
    """The lineage of the issued ids: each one's children, and the name of an unissued parent."""

    colours: dict[str, tuple[object, ...]]
    children: dict[str, list[str]]
    roots: list[str]
    #: The parent id of a root whose parent was never issued ("" for a true root): it is
    #: not a renameable id, so it stays in the encoding.
    outside: dict[str, str]

    @classmethod
    def of(cls, world: World, colours: dict[str, tuple[object, ...]]) -> _Forest:
        children: dict[str, list[str]] = {}
        roots: list[str] = []
        outside: dict[str, str] = {}
        for manifest in world.manifests:
            worker_id, parent = manifest.worker_id, manifest.parent_id
            if parent is not None and parent in colours:
                children.setdefault(parent, []).append(worker_id)
                outside[worker_id] = ""
            else:
                roots.append(worker_id)
                outside[worker_id] = parent or ""
        return cls(colours, children, roots, outside)

    def encode(self, worker_id: str) -> tuple[object, ...]:
        """Return the AHU encoding of a subtree: its colour, and its subtrees' encodings sorted."""
        subtrees = sorted(self.encode(child) for child in self.children.get(worker_id, ()))
        return (self.colours[worker_id], self.outside[worker_id], tuple(subtrees))


def state_key(world: World, reductions: Reductions) -> Hashable:
    """Return the identity of ``world`` under ``reductions`` (equal keys: one state)."""
    colours = _colours(world, reductions)
    head = (
        world.state.controller.kill_switch_engaged,
        _ABSENT if reductions.time else (world.now - EPOCH) // TICK,
        _foreign(world, colours),
    )
    if not reductions.symmetry:
        return (
            *head,
            tuple((m.worker_id, m.parent_id, colours[m.worker_id]) for m in world.manifests),
        )
    forest = _Forest.of(world, colours)
    return (*head, tuple(sorted(forest.encode(root) for root in forest.roots)))


def labelling(world: World, reductions: Reductions) -> dict[str, str]:
    """Return the canonical name of each issued id: ``c0``, ``c1``, ... in canonical order.

    Two worlds with equal keys give their ids the same canonical names, up to
    an automorphism (ids with equal subtrees may swap, and either choice leads
    to equivalent successors). Without the symmetry reduction every id is its
    own name.
    """
    if not reductions.symmetry:
        return {m.worker_id: m.worker_id for m in world.manifests}
    forest = _Forest.of(world, _colours(world, reductions))
    names: dict[str, str] = {}

    def visit(worker_id: str) -> None:
        names[worker_id] = f"c{len(names)}"
        for child in sorted(forest.children.get(worker_id, ()), key=forest.encode):
            visit(child)

    for root in sorted(forest.roots, key=forest.encode):
        visit(root)
    return names
