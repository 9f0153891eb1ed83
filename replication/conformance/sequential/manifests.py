"""The manifests a rule sends, on both sides: the reference's and the implementation's.

The reference always signs with the kit's Ed25519 test key. The implementation
receives the same manifests, unless its adapter signs with its own scheme
(HMAC, another key type: it provides ``sign``, ``sign_with_another_key`` and
``verify``). Then every manifest the kit needs is made through the adapter: a
validly signed one that was never issued (a hand-signed child, one from the
future, a substitute) with ``sign``, a foreign one with
``sign_with_another_key``, and a tampered one by changing the fields of the
implementation's own manifest and keeping its signature. So every rule,
signature rules included, checks an implementation with any scheme.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs

from replication.conformance.adapters.calls import (
    ContractViolation,
    describe_call,
    locate,
    unwrapped,
)
from replication.conformance.fixtures import KEY, OTHER_KEY
from replication.conformance.sequential.engine import Engine
from replication.conformance.sequential.results import ConformanceFailure
from replication.model import Manifest
from replication.signing import sign_manifest

if TYPE_CHECKING:
    from replication.conformance.sequential.results import Issued

__all__ = ["ManifestSources"]


class ManifestSources(Engine):
    """Makes each manifest a rule needs, for the reference and for the implementation."""

    def __init__(self) -> None:
        super().__init__()
        #: The manifest each worker registered with on the implementation's side.
        self.registered_manifests: dict[str, Manifest] = {}

    def _through_adapter(self, method: str, manifest: Manifest) -> Manifest:
        """Call one of the adapter's signing methods; a crash is a finding."""
        target: Any = getattr(self.implementation, method)

        def describe() -> str:
            return describe_call(method, manifest)

        try:
            made = self.control.watchdog.call(describe, target, manifest)
        except Exception as error:  # an implementation's crash is a finding
            raised = unwrapped(error)
            raise self._found(ConformanceFailure(
                "crash", method, "a manifest", f"{describe()} raised {type(raised).__name__}: "
                f"{raised}", locate(error), at=self.now, cause=error,
            )) from error  # fmt: skip
        if not isinstance(made, Manifest):
            message = f"{method}() must return a Manifest, got {type(made).__name__}"
            raise ContractViolation(message)
        return made

    def _adapter_signs(self) -> bool:
        return self.signs and self.implementation is not None

    def signed(self, unsigned: Manifest) -> tuple[Manifest, Manifest]:
        """Return ``unsigned``'s fields validly signed: by the kit's key, and by the adapter's."""
        reference = sign_manifest(unsigned, KEY)
        if not self._adapter_signs():
            return reference, reference
        return reference, self._through_adapter("sign", attrs.evolve(unsigned, signature=""))

    def foreign(self, issued: Issued) -> tuple[Manifest, Manifest]:
        """Return an issued manifest signed by a key that is not the controller's, both sides."""
        reference = sign_manifest(attrs.evolve(issued.reference, signature=""), OTHER_KEY)
        if not self._adapter_signs():
            return reference, reference
        original = issued.implementation or issued.reference
        return reference, self._through_adapter("sign_with_another_key", original)

    def registered_with(self, worker_id: str, reference: Manifest) -> Manifest:
        """Return the manifest the implementation registered ``worker_id`` with."""
        return self.registered_manifests.get(worker_id, reference)
