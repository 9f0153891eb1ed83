"""Reference model, property suite and conformance kit for self-replicating AI workers.

The package is layered, and data flows one way:

* :mod:`replication.model` - frozen records and the whole-system ``State``;
* :mod:`replication.transitions` - pure functions from a state to a new state
  and its audit event, or a denial with a reason code;
* :mod:`replication.signing` and :mod:`replication.encoding` - Ed25519 manifests
  over a canonical, domain-separated encoding;
* the seed's imperative facade - :mod:`replication.controller`,
  :mod:`replication.orchestrator`, :mod:`replication.worker`,
  :mod:`replication.observability` - which holds a current state and applies
  transitions. The core never imports the facade.
"""

from replication._frozen import FrozenDict, FrozenList
from replication.clock import ManualClock, MonotonicClock
from replication.controller import Controller
from replication.errors import (
    AuditError,
    BadSignatureError,
    ImmutableError,
    InvalidInputError,
    InvalidKeyError,
    InvalidTypeError,
    InvalidValueError,
    ReasonCode,
    ReentrancyError,
    ReplicationDenied,
    ReplicationError,
    SignatureError,
    StopConditionTriggered,
)
from replication.model import (
    ContainerRecord,
    ControllerState,
    Effect,
    Event,
    Manifest,
    NetworkPolicy,
    OrchestratorState,
    RegistryEntry,
    ReplicationContext,
    ReplicationContract,
    ResourceSpec,
    State,
    StopCondition,
)
from replication.observability import Metric, StructuredLogger
from replication.orchestrator import SandboxOrchestrator
from replication.signing import SigningKey, VerifyingKey, generate_signing_key
from replication.transitions import Outcome
from replication.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "AuditError",
    "BadSignatureError",
    "ContainerRecord",
    "Controller",
    "ControllerState",
    "Effect",
    "Event",
    "FrozenDict",
    "FrozenList",
    "ImmutableError",
    "InvalidInputError",
    "InvalidKeyError",
    "InvalidTypeError",
    "InvalidValueError",
    "Manifest",
    "ManualClock",
    "Metric",
    "MonotonicClock",
    "NetworkPolicy",
    "OrchestratorState",
    "Outcome",
    "ReasonCode",
    "ReentrancyError",
    "RegistryEntry",
    "ReplicationContext",
    "ReplicationContract",
    "ReplicationDenied",
    "ReplicationError",
    "ResourceSpec",
    "SandboxOrchestrator",
    "SignatureError",
    "SigningKey",
    "State",
    "StopCondition",
    "StopConditionTriggered",
    "StructuredLogger",
    "VerifyingKey",
    "Worker",
    "__version__",
    "generate_signing_key",
]
