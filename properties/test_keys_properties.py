"""Keys, by property: PEM round trips, key ids, and refusals of what is not a key."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from replication.errors import BadSignatureError, InvalidKeyError, InvalidTypeError
from replication.signing import SigningKey, VerifyingKey, generate_signing_key

seeds = st.binary(min_size=32, max_size=32)
not_keys = st.one_of(st.none(), st.integers(), st.text(), st.binary(), st.lists(st.integers()))


@given(seeds, st.one_of(st.none(), st.binary(min_size=1, max_size=16)))
def test_signing_keys_round_trip_through_pem(seed: bytes, password: bytes | None):
    key = SigningKey.from_seed(seed)
    pem = key.to_pem(password=password)
    assert pem.startswith(
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----" if password else b"-----BEGIN PRIVATE KEY-----"
    )
    again = SigningKey.from_pem(pem, password=password)
    assert again.verifying_key == key.verifying_key
    assert again.sign(seed) == key.sign(seed)


@given(seeds)
def test_verifying_keys_round_trip_through_pem_and_raw_bytes(seed: bytes):
    verifying = SigningKey.from_seed(seed).verifying_key
    pem = verifying.to_pem()
    assert pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert VerifyingKey.from_pem(pem) == verifying == VerifyingKey(verifying.raw)
    assert verifying.key_id == hashlib.sha256(verifying.raw).digest()[:8].hex()
    assert len(verifying.raw) == 32


@given(seeds, st.binary(max_size=64))
def test_a_signature_verifies_under_its_key_only(seed: bytes, message: bytes):
    key = SigningKey.from_seed(seed)
    key.verifying_key.verify(key.sign(message), message)
    other = SigningKey.from_seed(bytes(b ^ 1 for b in seed)).verifying_key
    with pytest.raises(BadSignatureError, match=r"^signature does not verify under this key$"):
        other.verify(key.sign(message), message)


@given(not_keys)
def test_anything_but_a_private_key_is_refused(value: object):
    with pytest.raises(InvalidTypeError) as caught:
        SigningKey(value)  # type: ignore[arg-type]
    assert str(caught.value) == f"private_key must be an Ed25519PrivateKey, got {value!r}"
    assert caught.value.got == value


#: A valid key of another algorithm: PEM parsing succeeds, the key type is refused.
EC_KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize("password", [None, b"secret"])
def test_a_pem_key_of_another_algorithm_is_refused_by_its_type(password: bytes | None):
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    private_pem = EC_KEY.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    public_pem = EC_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private_type = type(serialization.load_pem_private_key(private_pem, password)).__name__
    public_type = type(EC_KEY.public_key()).__name__
    with pytest.raises(InvalidKeyError) as private:
        SigningKey.from_pem(private_pem, password=password)
    assert str(private.value) == f"expected an Ed25519 private key, got {private_type}"
    with pytest.raises(InvalidKeyError) as public:
        VerifyingKey.from_pem(public_pem)
    assert str(public.value) == f"expected an Ed25519 public key, got {public_type}"


@given(not_keys)
def test_anything_but_32_raw_bytes_is_refused(value: object):
    with pytest.raises((InvalidTypeError, InvalidKeyError)):
        VerifyingKey(value)  # type: ignore[arg-type]


@given(st.binary(max_size=80))
def test_garbage_pem_is_refused_cleanly(data: bytes):
    with pytest.raises(InvalidKeyError, match=r"^not a usable PEM private key: "):
        SigningKey.from_pem(
            b"-----BEGIN PRIVATE KEY-----\n" + data + b"\n-----END PRIVATE KEY-----\n"
        )
    with pytest.raises(InvalidKeyError, match=r"^not a PEM public key: "):
        VerifyingKey.from_pem(data)


def test_generated_keys_are_distinct_and_usable():
    keys = [generate_signing_key() for _ in range(8)]
    assert len({key.verifying_key.raw for key in keys}) == 8
    for key in keys:
        assert isinstance(key.private_key, Ed25519PrivateKey)
        key.verifying_key.verify(key.sign(b"m"), b"m")
