"""The wire protocol: any implementation, in any language, driven live by the kit.

specs/09-wire-protocol.md defines it: JSON Lines over the implementation's
stdin and stdout, a handshake, one request per adapter action. This package
holds its messages and JSON Schema (:mod:`.messages`), the kit's adapter that
speaks it to a subprocess (:mod:`.client`, ``--exec COMMAND``), a server of it
around any Python adapter (:mod:`.serve`) and the replay of a recorded
exchange (:mod:`.replay`).
"""
