"""What faces an implementation's adapter: its protocol, its loading, every call into it.

Both the kit (``sequential``, ``concurrent``, ``vectors``) and the explorer's
transition tour (:mod:`replication.explore.tour`) drive adapters through these
modules, and nothing here depends on either:

* ``adapter``: the protocol an implementation's adapter follows, and the bundled adapters;
* ``preflight``: the adapter loaded and checked before a run (``SetupError``);
* ``calls``: every call into the adapter, under a time limit, its crashes located;
* ``observations``: what ``observe()`` must return, and two observations compared.

An adapter imports what it needs from here: ``from replication.conformance.adapters
import Denied``.
"""

from replication.conformance.adapters.adapter import (
    OPTIONAL_ACTIONS,
    Denied,
    FacadeImplementation,
    Implementation,
    ReferenceImplementation,
)
from replication.conformance.adapters.preflight import SetupError, load_factory

__all__ = [
    "OPTIONAL_ACTIONS",
    "Denied",
    "FacadeImplementation",
    "Implementation",
    "ReferenceImplementation",
    "SetupError",
    "load_factory",
]
