"""Ed25519 keys, the signed encoding and manifest signatures."""

from __future__ import annotations

import hashlib

import attrs
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from replication import _ed25519
from replication.encoding import MANIFEST_PAYLOAD_TYPE, canonical_json, format_timestamp, pae
from replication.errors import BadSignatureError, InvalidKeyError, InvalidTypeError
from replication.model import Manifest, NetworkPolicy, ResourceSpec
from replication.signing import (
    SigningKey,
    VerifyingKey,
    format_signature,
    generate_signing_key,
    parse_signature,
    sign_manifest,
    verify_manifest,
)
from tests.helpers import KEY, OTHER_KEY, RESOURCES, T0

# RFC 8032, section 7.1, TEST 1: secret key, public key, and the signature of the empty message.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIGNATURE = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555f"
    "b8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)

P = 2**255 - 19
# The eight small-order points, as libsodium's blocklist lists them, plus the
# non-canonical encodings y = p and y = p + 1 of the points y = 0 and y = 1.
SMALL_ORDER_ENCODINGS = [
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2 (y = -1)
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p: non-canonical
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p + 1
]


def with_sign_bit(encoding: str) -> str:
    raw = bytearray(bytes.fromhex(encoding))
    raw[31] |= 0x80
    return raw.hex()


def encode_point(point: tuple[int, int, int, int]) -> bytes:
    x_numerator, y_numerator, z, _ = point
    inverse = pow(z, P - 2, P)
    x, y = x_numerator * inverse % P, y_numerator * inverse % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


def manifest(**overrides: object) -> Manifest:
    values = {
        "worker_id": "w1",
        "parent_id": None,
        "depth": 0,
        "state_snapshot": {},
        "issued_at": T0,
        "resources": RESOURCES,
    }
    values.update(overrides)
    return Manifest(**values)  # type: ignore[arg-type]


class TestKnownAnswers:
    # Spec: R-KEY-3.
    def test_rfc8032_test_1(self):
        """Our key wrapper reproduces RFC 8032's first test vector exactly."""
        key = SigningKey.from_seed(RFC8032_SEED)
        assert key.verifying_key.raw == RFC8032_PUBLIC
        assert key.sign(b"") == RFC8032_SIGNATURE
        key.verifying_key.verify(RFC8032_SIGNATURE, b"")

    # Spec: R-SIGN-1, R-SIGN-2, R-SIGN-3.
    def test_the_signed_bytes_of_a_fixed_manifest(self):
        """The exact bytes: DSSE PAE around RFC 8785 JSON, lengths in bytes, not characters."""
        fixed = manifest(
            worker_id="wörker-1",
            parent_id="root",
            depth=1,
            state_snapshot={"b": [1, 2.5, None], "a": "é", "€": 1e21},
            resources=ResourceSpec(0.5, 256, NetworkPolicy(allow_external=True)),
        )
        body = (
            '{"depth":1,"issued_at":"2026-01-01T00:00:00.000000Z","parent_id":"root",'
            '"resources":{"cpu_limit":0.5,"memory_limit_mb":256,"network_policy":'
            '{"allow_controller":true,"allow_external":true}},"state_snapshot":'
            '{"a":"é","b":[1,2.5,null],"€":1e+21},"worker_id":"wörker-1"}'
        ).encode()
        expected = b"DSSEv1 23 replication.manifest.v1 %d %b" % (len(body), body)
        assert fixed.signing_payload == expected
        assert len(body) == len(body.decode()) + 4  # three two-byte and one three-byte char

    # Spec: R-SIGN-1, R-SIGN-5.
    def test_pae_and_timestamps(self):
        assert pae("t", b"") == b"DSSEv1 1 t 0 "
        assert MANIFEST_PAYLOAD_TYPE == "replication.manifest.v1"
        assert format_timestamp(T0) == "2026-01-01T00:00:00.000000Z"

    # Spec: R-SIGN-3.
    def test_canonical_json_is_rfc8785_not_json_dumps(self):
        """Number formatting and key order follow RFC 8785 (ECMAScript, UTF-16 order)."""
        assert (
            canonical_json({"b": 1e16, "a": 5.0, "c": -0.0})
            == b'{"a":5,"b":10000000000000000,"c":0}'
        )
        assert (
            canonical_json({"\U0001f600": 1, "\ufb01": 2}) == '{"\U0001f600":1,"\ufb01":2}'.encode()
        )


class TestSigningKeys:
    def test_pem_round_trips(self):
        key = generate_signing_key()
        again = SigningKey.from_pem(key.to_pem())
        assert again.verifying_key == key.verifying_key
        locked = key.to_pem(password=b"correct horse")
        assert b"ENCRYPTED" in locked
        assert SigningKey.from_pem(locked, password=b"correct horse").verifying_key == (
            key.verifying_key
        )
        assert VerifyingKey.from_pem(key.verifying_key.to_pem()) == key.verifying_key

    def test_other_key_types_and_garbage_are_refused(self):
        ec_key = ec.generate_private_key(ec.SECP256R1())
        ec_pem = ec_key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        with pytest.raises(InvalidKeyError, match="expected an Ed25519 private key"):
            SigningKey.from_pem(ec_pem)
        ec_public = ec_key.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )
        with pytest.raises(InvalidKeyError, match="expected an Ed25519 public key"):
            VerifyingKey.from_pem(ec_public)
        with pytest.raises(InvalidKeyError, match="not a usable PEM private key"):
            SigningKey.from_pem(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        with pytest.raises(InvalidKeyError, match="not a PEM public key"):
            VerifyingKey.from_pem(b"garbage")
        with pytest.raises(InvalidTypeError, match="private_key must be an Ed25519PrivateKey"):
            SigningKey("secret")  # type: ignore[arg-type]
        with pytest.raises(InvalidTypeError, match="seed must be 32 bytes"):
            SigningKey.from_seed(b"short")

    # Spec: R-SIGN-6.
    def test_key_id_is_a_hash_prefix_of_the_raw_key(self):
        expected = hashlib.sha256(KEY.verifying_key.raw).hexdigest()[:16]
        assert KEY.verifying_key.key_id == expected


class TestVerifyingKeyChecks:
    # Spec: R-KEY-1, R-KEY-2.
    @pytest.mark.parametrize(
        "encoding", SMALL_ORDER_ENCODINGS + [with_sign_bit(e) for e in SMALL_ORDER_ENCODINGS]
    )
    def test_invalid_small_order_and_non_canonical_keys_are_refused(self, encoding):
        with pytest.raises(InvalidKeyError, match="refusing Ed25519 public key"):
            VerifyingKey(bytes.fromhex(encoding))

    # Spec: R-KEY-2.
    def test_the_order_8_points_are_refused_as_small_order(self):
        """The constants above really are torsion points: each is refused for its order."""
        for encoding in SMALL_ORDER_ENCODINGS[2:4]:
            with pytest.raises(InvalidKeyError, match="small order"):
                VerifyingKey(bytes.fromhex(encoding))

    # Spec: R-KEY-2.
    def test_the_identity_key_would_accept_a_forgery_for_any_message(self):
        """The pitfall we guard against: OpenSSL verifies R = identity, S = 0 under it."""
        identity = bytes.fromhex(SMALL_ORDER_ENCODINGS[1])
        forged = identity + bytes(32)
        Ed25519PublicKey.from_public_bytes(identity).verify(forged, b"any message at all")
        with pytest.raises(InvalidKeyError, match="small order"):
            VerifyingKey(identity)

    # Spec: R-KEY-1, R-KEY-2.
    def test_off_curve_and_mixed_order_points_are_refused(self):
        off_curve = (2).to_bytes(32, "little")  # y = 2 has no x on the curve
        with pytest.raises(InvalidKeyError, match="not a point on the curve"):
            VerifyingKey(off_curve)
        good = _ed25519._decode(RFC8032_PUBLIC)
        torsion = _ed25519._decode(bytes.fromhex(SMALL_ORDER_ENCODINGS[2]))
        mixed = encode_point(_ed25519._add(good, torsion))
        with pytest.raises(InvalidKeyError, match="outside the prime-order subgroup"):
            VerifyingKey(mixed)

    # Spec: R-KEY-1.
    def test_wrong_lengths_and_types_are_refused(self):
        with pytest.raises(InvalidKeyError, match="32 bytes, got 31"):
            VerifyingKey(RFC8032_PUBLIC[:31])
        with pytest.raises(InvalidTypeError):
            VerifyingKey(RFC8032_PUBLIC.hex())  # type: ignore[arg-type]

    # Spec: R-KEY-3.
    def test_standard_keys_pass(self):
        assert VerifyingKey(RFC8032_PUBLIC).raw == RFC8032_PUBLIC
        for _ in range(5):
            generate_signing_key().verifying_key  # noqa: B018 - construction is the check


class TestManifestSignatures:
    # Spec: R-SIGN-6.
    def test_round_trip(self):
        signed = sign_manifest(manifest(), KEY)
        verify_manifest(signed, KEY.verifying_key)
        key_id, raw = parse_signature(signed.signature)
        assert key_id == KEY.verifying_key.key_id
        assert len(raw) == 64
        assert attrs.evolve(signed, signature="") == manifest()

    def test_the_signed_copy_carries_the_same_payload(self):
        unsigned = manifest(state_snapshot={"x": [1, {"y": None}]})
        signed = sign_manifest(unsigned, KEY)
        recomputed = attrs.evolve(signed)  # a fresh object computes its payload itself
        assert signed.signing_payload == recomputed.signing_payload == unsigned.signing_payload

    # Spec: R-SIGN-7.
    def test_another_key_does_not_verify(self):
        signed = sign_manifest(manifest(), OTHER_KEY)
        with pytest.raises(BadSignatureError, match="does not verify"):
            verify_manifest(signed, KEY.verifying_key)

    # Spec: R-SIGN-7.
    def test_the_key_id_is_only_a_hint(self):
        """Claiming another key id neither helps a forgery nor breaks a genuine signature."""
        signed = sign_manifest(manifest(), KEY)
        _, raw = parse_signature(signed.signature)
        relabelled = attrs.evolve(
            signed, signature=format_signature(OTHER_KEY.verifying_key.key_id, raw)
        )
        verify_manifest(relabelled, KEY.verifying_key)
        forged = sign_manifest(manifest(), OTHER_KEY)
        _, other_raw = parse_signature(forged.signature)
        claimed = attrs.evolve(
            forged, signature=format_signature(KEY.verifying_key.key_id, other_raw)
        )
        with pytest.raises(BadSignatureError):
            verify_manifest(claimed, KEY.verifying_key)

    # Spec: R-SIGN-6.
    @pytest.mark.parametrize(
        "text",
        [
            "",
            "signed",
            "ed25519",
            "ed25519::",
            "rsa:" + "0" * 16 + ":" + "0" * 128,
            "ed25519:" + "0" * 15 + ":" + "0" * 128,
            "ed25519:" + "0" * 16 + ":" + "0" * 130,
            "ed25519:" + "0" * 16 + ":" + "G" * 128,
            " ed25519:" + "0" * 16 + ":" + "0" * 128,
            "ed25519:" + "0" * 16 + ":" + "0" * 128 + "\n",
        ],
    )
    def test_malformed_signatures_raise_bad_signature(self, text):
        with pytest.raises(BadSignatureError, match="malformed signature"):
            parse_signature(text)
        with pytest.raises(BadSignatureError):
            verify_manifest(manifest(signature=text), KEY.verifying_key)

    def test_a_non_string_signature_is_a_bad_signature(self):
        with pytest.raises(BadSignatureError, match="a signature is a string"):
            parse_signature(b"bytes")  # type: ignore[arg-type]

    def test_signing_checks_its_arguments(self):
        with pytest.raises(InvalidTypeError, match=r"^manifest must be a Manifest"):
            sign_manifest({"worker_id": "w1"}, KEY)  # type: ignore[arg-type]
        with pytest.raises(InvalidTypeError, match=r"^key must be a replication.signing"):
            sign_manifest(manifest(), "secret")  # type: ignore[arg-type]


class LibraryChecks:
    """Counts the Ed25519 checks made by the cryptography library (keys._library_verify)."""

    def __init__(self, monkeypatch) -> None:
        from replication import keys

        self.calls = 0
        real = keys._library_verify

        def counted(key, signature: bytes, data: bytes) -> None:
            self.calls += 1
            real(key, signature, data)

        monkeypatch.setattr(keys, "_library_verify", counted)


class TestKnownGoodSignatures:
    # Spec: R-SIGN-10.
    def test_a_verifying_key_whose_bytes_were_replaced_remembers_what_it_checked(self):
        """A VerifyingKey's ``raw`` swapped (object.__setattr__) after its library key was
        made checks under the library key; what it remembers is that key's bytes, so the
        swapped-in bytes gain nothing: their own key still refuses the signature."""
        signer, other = SigningKey.from_seed(bytes(range(50, 82))), OTHER_KEY
        data = b"checked under the first key"
        signature = signer.sign(data)
        swapped = VerifyingKey(signer.verifying_key.raw)
        swapped.verify(signature, data)  # makes and caches the library key
        object.__setattr__(swapped, "raw", other.verifying_key.raw)
        swapped.verify(signature, data)
        with pytest.raises(BadSignatureError):
            VerifyingKey(other.verifying_key.raw).verify(signature, data)

    # Spec: R-SIGN-10.
    def test_a_key_replaced_behind_the_frozen_class_is_remembered_under_its_own_public_key(self):
        """What is remembered at signing is the public half of the key that signed: a private
        key swapped into a SigningKey (object.__setattr__) after it signed once does not make
        its signatures known good under the first key's public half."""
        key = SigningKey.from_seed(bytes(range(100, 132)))
        first_public = key.verifying_key
        key.sign(b"warm-up")
        object.__setattr__(key, "private_key", Ed25519PrivateKey.from_private_bytes(bytes(32)))
        signature = key.sign(b"signed by the swapped-in key")
        with pytest.raises(BadSignatureError):
            first_public.verify(signature, b"signed by the swapped-in key")

    # Spec: R-SIGN-10.
    def test_a_signature_this_process_made_is_not_checked_again(self, monkeypatch):
        """Ed25519 signing is deterministic: what SigningKey.sign returned verifies, so a
        verification of those exact bytes under that key needs no second check."""
        data = b"known good: signed here " + bytes(8)
        signature = KEY.sign(data)
        checks = LibraryChecks(monkeypatch)
        KEY.verifying_key.verify(signature, data)
        KEY.verifying_key.verify(signature, data)
        assert checks.calls == 0

    # Spec: R-SIGN-10.
    def test_a_signature_verified_once_is_not_checked_again(self, monkeypatch):
        """A signature made elsewhere is checked once; the same bytes again are known."""
        data = b"known good: verified here"
        signature = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))).sign(data)
        checks = LibraryChecks(monkeypatch)
        OTHER_KEY.verifying_key.verify(signature, data)
        OTHER_KEY.verifying_key.verify(signature, data)
        assert checks.calls == 1

    # Spec: R-SIGN-10, R-SIGN-7.
    def test_other_bytes_another_key_or_another_signature_are_checked_and_refused(self):
        """Only the exact (key, signature, data) triple is known: one byte changed anywhere,
        or the key changed, is checked by the library and refused."""
        data = b"known good: exact bytes only"
        signature = KEY.sign(data)
        KEY.verifying_key.verify(signature, data)
        flipped = bytes([signature[0] ^ 1]) + signature[1:]
        for key, tried_signature, tried_data in [
            (KEY.verifying_key, signature, data + b"!"),
            (KEY.verifying_key, flipped, data),
            (OTHER_KEY.verifying_key, signature, data),
        ]:
            with pytest.raises(BadSignatureError, match="does not verify"):
                key.verify(tried_signature, tried_data)

    # Spec: R-SIGN-10.
    def test_a_bytes_subclass_lying_about_equality_is_checked_by_its_content(self):
        """The look-up is on exact bytes: a subclass that claims to equal (and hash like)
        the signed bytes is read for what it holds, which does not verify."""
        data = b"known good: the genuine bytes"
        signature = KEY.sign(data)

        class Liar(bytes):
            def __eq__(self, other: object) -> bool:
                return True

            def __hash__(self) -> int:
                return hash(data)

        with pytest.raises(BadSignatureError, match="does not verify"):
            KEY.verifying_key.verify(signature, Liar(b"known good: other bytes!!!!!"))

    # Spec: R-SIGN-10.
    def test_a_private_key_of_another_class_teaches_nothing(self, monkeypatch):
        """Only the library's own private key class is trusted to sign correctly: a subclass
        returning bytes of its choosing does not make them known good."""
        from replication import keys

        real = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))

        class Lying(Ed25519PrivateKey):
            def sign(self, data: bytes) -> bytes:
                return bytes(64)

            def public_key(self):
                return real.public_key()

            def private_bytes(self, *args, **kwargs):  # pragma: no cover - never called
                return real.private_bytes(*args, **kwargs)

            def private_bytes_raw(self) -> bytes:  # pragma: no cover - never called
                return real.private_bytes_raw()

            def __copy__(self):  # pragma: no cover - never called
                return self

            def __deepcopy__(self, memo):  # pragma: no cover - never called
                return self

        liar = keys.SigningKey(Lying())
        data = b"known good: a lying signer"
        signature = liar.sign(data)
        with pytest.raises(BadSignatureError, match="does not verify"):
            liar.verifying_key.verify(signature, data)

    # Spec: R-SIGN-10.
    def test_the_memory_is_bounded(self, monkeypatch):
        """However many signatures are made, at most KNOWN_GOOD_LIMIT are kept."""
        from replication import keys

        monkeypatch.setattr(keys, "KNOWN_GOOD_LIMIT", 8)
        for number in range(50):
            KEY.sign(b"known good: bounded %d" % number)
            assert len(keys._KNOWN_GOOD) <= 8
