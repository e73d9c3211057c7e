"""Encord v2 request signing: ed25519 HTTP message signatures (ref/encord.md section 1.2 A).

A signed request carries::

    Content-Digest: sha-256=:<base64 sha256(body bytes)>:
    Signature-Input: encord-sig=("@method" "@request-target" "content-digest")
                     ;created=<unix s>;keyid="<hex>";alg="ed25519"      (one line on the wire)
    Signature: encord-sig=:<base64 ed25519 signature>:

over the signature base (four lines joined by ``\\n``, no trailing newline)::

    "@method": POST
    "@request-target": /v2/public/storage/folders/<uuid>/data-upload-jobs
    "content-digest": sha-256=:...:
    "@signature-params": ("@method" "@request-target" "content-digest");created=...;keyid="...";alg="ed25519"

``@request-target`` is the path plus the query string exactly as sent, so the caller must send
the same encoded target it signed; the body digest is over the exact bytes sent (an empty body
digests empty bytes). ``keyid`` is the hex of the 32-byte raw public key. The base is signed as
is (ed25519 needs no pre-hash). :func:`sign` is a pure function of its inputs: ed25519 signatures
are deterministic.

Keys: an OpenSSH private key (``-----BEGIN OPENSSH PRIVATE KEY-----``), a PKCS#8 PEM, or the raw
32-byte seed as 64 hex characters or base64. Anything else (RSA, ECDSA, an encrypted key) is
refused; error messages name the problem, never the key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

LABEL = "encord-sig"
COMPONENTS = ("@method", "@request-target", "content-digest")
_HEX_SEED = re.compile(r"[0-9a-fA-F]{64}")


class KeyProblem(ValueError):
    """The private key cannot be used (its text never appears in the message)."""


def load_private_key(text: str | bytes) -> Ed25519PrivateKey:
    """An ed25519 private key from OpenSSH / PKCS#8 PEM text or a raw 32-byte seed (hex, base64)."""
    data = text.encode() if isinstance(text, str) else bytes(text)
    data = data.strip()
    if data.startswith(b"-----BEGIN"):
        key: object
        try:
            if b"OPENSSH PRIVATE KEY" in data[:64]:
                key = serialization.load_ssh_private_key(data, password=None)
            else:
                key = serialization.load_pem_private_key(data, password=None)
        except TypeError:
            raise KeyProblem("private key is encrypted with a passphrase; give an unencrypted key") from None
        except (ValueError, UnsupportedAlgorithm):
            raise KeyProblem("private key is not a readable OpenSSH or PEM key") from None
        if not isinstance(key, Ed25519PrivateKey):
            kind = type(key).__name__.removesuffix("PrivateKey")
            raise KeyProblem(f"private key is {kind}, Encord needs ed25519")
        return key
    return Ed25519PrivateKey.from_private_bytes(_raw_seed(data))


def _raw_seed(data: bytes) -> bytes:
    if _HEX_SEED.fullmatch(data.decode("ascii", "replace")):
        return bytes.fromhex(data.decode())
    try:
        seed = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        seed = b""
    if len(seed) != 32:
        raise KeyProblem(
            "private key is neither an OpenSSH/PEM key nor a raw 32-byte ed25519 seed (64 hex or base64)"
        )
    return seed


def key_id(key: Ed25519PrivateKey) -> str:
    """``keyid``: the hex of the raw 32-byte public key."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def content_digest(body: bytes) -> str:
    return "sha-256=:" + base64.b64encode(hashlib.sha256(body).digest()).decode() + ":"


def signature_params(created: int, keyid: str) -> str:
    names = " ".join(f'"{c}"' for c in COMPONENTS)
    return f'({names});created={created};keyid="{keyid}";alg="ed25519"'


def signature_base(method: str, target: str, digest: str, params: str) -> bytes:
    """The four lines that are signed (no trailing newline)."""
    return (
        f'"@method": {method.upper()}\n'
        f'"@request-target": {target}\n'
        f'"content-digest": {digest}\n'
        f'"@signature-params": {params}'
    ).encode()


def sign(method: str, target: str, body: bytes, key: Ed25519PrivateKey, created: int) -> dict[str, str]:
    """The signature headers for one request; ``target`` = encoded path + query, as sent."""
    return Signer(key).headers(method, target, body, created)


class Signer:
    """A loaded key with its ``keyid`` computed once; ``repr`` shows the key id, never the key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.keyid = key_id(key)

    def headers(self, method: str, target: str, body: bytes, created: int) -> dict[str, str]:
        """``Content-Digest``, ``Signature-Input`` and ``Signature`` for one request."""
        digest = content_digest(body)
        params = signature_params(created, self.keyid)
        signature = self._key.sign(signature_base(method, target, digest, params))
        return {
            "Content-Digest": digest,
            "Signature-Input": f"{LABEL}={params}",
            "Signature": f"{LABEL}=:{base64.b64encode(signature).decode()}:",
        }

    def __repr__(self) -> str:
        return f"<Signer keyid={self.keyid[:12]}...>"
