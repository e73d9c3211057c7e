"""Encord request signatures: the exact base of ref/encord.md 1.2 A, verified with the public key."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from workers.platforms.encord import signing

SEED = bytes(range(32))
KEY = Ed25519PrivateKey.from_private_bytes(SEED)
TARGET = "/v2/public/storage/folders/11111111-2222-3333-4444-555555555555/data-upload-jobs"


def _pub_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


def _b64(field: str) -> bytes:
    m = re.fullmatch(r"encord-sig=:([A-Za-z0-9+/=]+):", field)
    assert m, field
    return base64.b64decode(m.group(1))


class TestSignature:
    def test_empty_body_digest_is_the_documented_constant(self) -> None:
        """A GET digests empty bytes: the value quoted in the reference notes."""
        assert signing.content_digest(b"") == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"

    def test_signature_verifies_over_the_documented_four_line_base(self) -> None:
        """The signed bytes are the four lines of the notes, written out here independently."""
        body = b'{"dataItems":{"skipDuplicateUrls":true},"integrationHash":"x","ignoreErrors":true}'
        h = signing.sign("post", TARGET, body, KEY, created=1795319911)
        keyid = _pub_hex(KEY)
        digest = "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"
        params = (
            f'("@method" "@request-target" "content-digest");created=1795319911;keyid="{keyid}";alg="ed25519"'
        )
        assert h["Content-Digest"] == digest
        assert h["Signature-Input"] == f"encord-sig={params}"
        base = (
            f'"@method": POST\n"@request-target": {TARGET}\n"content-digest": {digest}\n'
            f'"@signature-params": {params}'
        ).encode()
        KEY.public_key().verify(_b64(h["Signature"]), base)

    def test_vector_is_stable(self) -> None:
        """ed25519 is deterministic: a fixed key, request and time give this exact signature
        (recorded once, and verified here with the public key over the base written out)."""
        target = "/v2/public/cloud-integrations?includeOrgAccess=false"
        h = signing.sign("GET", target, b"", KEY, 1700000000)
        keyid = "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"
        assert signing.key_id(KEY) == keyid
        assert h["Signature"] == (
            "encord-sig=:pllEzhlTNqdZO+/nWM1G0awYSbqnFCVAQg0NoKWKEqMdjaIVHxIX0h6z8PYH2VP7vtZg7QipBT6SbyfPGNpMDQ==:"
        )
        base = (
            '"@method": GET\n'
            f'"@request-target": {target}\n'
            '"content-digest": sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:\n'
            f'"@signature-params": ("@method" "@request-target" "content-digest");created=1700000000;'
            f'keyid="{keyid}";alg="ed25519"'
        ).encode()
        KEY.public_key().verify(_b64(h["Signature"]), base)

    @given(
        body=st.binary(max_size=256), query=st.text("abc=&%20", max_size=20), created=st.integers(0, 2**40)
    )
    def test_any_change_to_what_was_signed_breaks_the_signature(
        self, body: bytes, query: str, created: int
    ) -> None:
        """The query string and every body byte are covered: flipping one fails verification."""
        target = TARGET + ("?" + query if query else "")
        h = signing.sign("POST", target, body, KEY, created)
        sig = _b64(h["Signature"])
        params = signing.signature_params(created, signing.key_id(KEY))
        good = signing.signature_base("POST", target, signing.content_digest(body), params)
        KEY.public_key().verify(sig, good)
        tampered = signing.signature_base("POST", target, signing.content_digest(body + b"x"), params)
        with pytest.raises(InvalidSignature):
            KEY.public_key().verify(sig, tampered)
        with pytest.raises(InvalidSignature):
            KEY.public_key().verify(
                sig, signing.signature_base("POST", target + "&x", h["Content-Digest"], params)
            )


class TestKeys:
    def test_openssh_pkcs8_hex_and_base64_seeds_give_the_same_key(self) -> None:
        """Every accepted form loads the same ed25519 key."""
        openssh = KEY.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        pkcs8 = KEY.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        assert openssh.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
        forms = [openssh.decode(), pkcs8, SEED.hex(), base64.b64encode(SEED).decode() + "\n"]
        assert {signing.key_id(signing.load_private_key(f)) for f in forms} == {_pub_hex(KEY)}

    def test_other_key_types_are_refused_by_type(self) -> None:
        """RSA and ECDSA keys are named as such, not accepted."""
        for other, name in (
            (rsa.generate_private_key(public_exponent=65537, key_size=1024), "RSA"),
            (ec.generate_private_key(ec.SECP256R1()), "EC"),
        ):
            pem = other.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
            )
            with pytest.raises(signing.KeyProblem, match=f"is {name}.*needs ed25519"):
                signing.load_private_key(pem)

    def test_errors_never_quote_the_key(self) -> None:
        """Encrypted, garbled and short keys: the message names the problem, not the material."""
        encrypted = KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        ).decode()
        garbled = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAsecretmaterial\n-----END OPENSSH PRIVATE KEY-----"
        for text, reason in (
            (encrypted, "passphrase"),
            (garbled, "not a readable"),
            (SEED.hex()[:40], "neither"),
        ):
            with pytest.raises(signing.KeyProblem, match=reason) as err:
                signing.load_private_key(text)
            assert "secretmaterial" not in str(err.value) and SEED.hex()[:40] not in str(err.value)

    def test_signer_repr_shows_the_key_id_only(self) -> None:
        s = signing.Signer(KEY)
        assert "keyid=03a107bff3ce" in repr(s) and SEED.hex() not in repr(s)
