"""The exhaustive explorer: the core's own transitions, model-checked, and implementations toured.

:func:`explore` searches every state of a bounded configuration breadth first
from the initial state, trying every action of the model (issue for each
parent, register, launch, heartbeat, kill, reap, kill switch, quarantine,
release, deregister, expire, enforce, the clock's tick, and hostile moves),
checking every invariant of the catalogue in every state and every step, and
reporting coverage and the shortest counterexample. :func:`tour` drives an
implementation through the conformance adapter along paths that take every
edge of the explored graph. The command line is ``replication explore``; the
specification is ``specs/06-exploration.md``.

The modules, in the order data flows: ``bounds`` (the configuration),
``crypto`` (the fixed key, memoised), ``actions`` (the world and the moves),
``canonical`` (state identity: time abstraction and symmetry), ``expand``
(checking one state and its steps), ``search`` (breadth-first search, serial
or on every core), ``results`` and ``report`` (what was found), ``trace``
(counterexamples as programs and test vectors), ``driver`` and ``tour`` (the
transition tour), ``cli`` (the command).
"""

from replication.explore.actions import KINDS, Action, World, apply, enabled_actions, initial_world
from replication.explore.bounds import BOUNDS, DEFAULT, Bound
from replication.explore.canonical import Reductions, labelling, state_key
from replication.explore.results import Counterexample, Exploration
from replication.explore.search import explore
from replication.explore.tour import Divergence, Tour, tour
from replication.explore.trace import ExportError, program, replay, write_vector

__all__ = [
    "BOUNDS",
    "DEFAULT",
    "KINDS",
    "Action",
    "Bound",
    "Counterexample",
    "Divergence",
    "Exploration",
    "ExportError",
    "Reductions",
    "Tour",
    "World",
    "apply",
    "enabled_actions",
    "explore",
    "initial_world",
    "labelling",
    "program",
    "replay",
    "state_key",
    "tour",
    "write_vector",
]
