"""DSSE envelopes and the keys that sign them (Ed25519, ECDSA P-256), with ``cryptography``.

DSSE (Dead Simple Signing Envelope, v1.0.2) signs ``PAE(payloadType,
payload)``, never the JSON around it::

    PAE = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

where LEN is the byte length in ASCII decimal. The envelope is
``{"payload": b64(body), "payloadType": type, "signatures": [{"keyid", "sig"}]}``
with standard base64 signatures. A ``keyid`` is a hint only: a signature
counts when it verifies with a public key the verifier was given.

Keys are PEM files: the private key PKCS#8 (encrypted when a passphrase is
set), the public key SubjectPublicKeyInfo. They never leave the machine:
nothing here writes to a store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from ._errors import EnvelopeUnreadableError, KeyFileError, PayloadTypeError, SignatureError

PAYLOAD_TYPE = "application/vnd.in-toto+json"
PASSPHRASE_ENV = "DVFLOW_KEY_PASSPHRASE"  # noqa: S105 (the name of a variable, not a secret)
KEY_TYPES = ("ed25519", "ecdsa-p256")
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


def default_key_dir() -> Path:
    """Where ``dvflow keygen`` puts keys: ``$XDG_CONFIG_HOME/dvflow/keys`` (``~/.config``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path("~/.config").expanduser())
    return Path(base) / "dvflow" / "keys"


def is_private_key_file(path: Path) -> bool:
    """Does the file start like a PEM private key (any type, encrypted or not)?"""
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError:
        return False
    return head.lstrip().startswith(b"-----BEGIN") and b"PRIVATE KEY-----" in head


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what is signed."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def keyid(public: PublicKey) -> str:
    """sha256 of the key's DER SubjectPublicKeyInfo: a name for the key, never a proof."""
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


# -- keys ---------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path
    kind: str
    keyid: str
    encrypted: bool


def generate_keypair(
    out: str | os.PathLike[str],
    *,
    kind: str = "ed25519",
    name: str = "dvflow-attest",
    passphrase: bytes | None = None,
    force: bool = False,
) -> KeyPair:
    """Write ``NAME.key`` (mode 0600, PKCS#8 PEM) and ``NAME.pub`` into folder ``out``."""
    if kind not in KEY_TYPES:
        raise KeyFileError(str(out), f"unknown key type {kind!r}", f"Use one of {KEY_TYPES}.")
    folder = Path(out).expanduser()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_path, public_path = folder / f"{name}.key", folder / f"{name}.pub"
    if not force and (private_path.exists() or public_path.exists()):
        raise KeyFileError(
            str(private_path), "already exists", "Pass --force to replace it, or --out elsewhere."
        )
    key: PrivateKey = (
        ed25519.Ed25519PrivateKey.generate()
        if kind == "ed25519"
        else ec.generate_private_key(ec.SECP256R1())
    )
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    _write_private(private_path, pem)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_path.write_bytes(public_pem)
    return KeyPair(private_path, public_path, kind, keyid(key.public_key()), bool(passphrase))


def _write_private(path: Path, pem: bytes) -> None:
    """Created 0600 from the start: the key is never readable by others, not even briefly."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)


def passphrase_from_env(variable: str = PASSPHRASE_ENV) -> bytes | None:
    value = os.environ.get(variable)
    return value.encode("utf-8") if value else None


def load_private_key(path: str | os.PathLike[str], passphrase: bytes | None = None) -> PrivateKey:
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as exc:  # encrypted without a passphrase, or the reverse
        needs = "is encrypted" if passphrase is None else "is not encrypted"
        raise KeyFileError(
            str(path), f"{needs}: {exc}", f"Set {PASSPHRASE_ENV} to its passphrase (or unset it)."
        ) from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        wrong = "Bad decrypt" in str(exc) or "password" in str(exc).lower()
        problem = "wrong passphrase" if wrong else "not a PEM private key"
        raise KeyFileError(str(path), problem) from None
    supported: PrivateKey = _supported(path, key)
    return supported


def load_public_key(path: str | os.PathLike[str]) -> PublicKey:
    data = _read_key_file(path)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        hint = None
        if b"PRIVATE KEY" in data:
            hint = (
                "That is a private key: pass the public one (the .pub file 'dvflow keygen' wrote)."
            )
        raise KeyFileError(str(path), "not a PEM public key", hint) from None
    supported: PublicKey = _supported(path, key)
    return supported


def _read_key_file(path: str | os.PathLike[str]) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise KeyFileError(str(path), exc.strerror or "cannot be read") from None


def _supported(path: str | os.PathLike[str], key: Any) -> Any:
    curve = getattr(key, "curve", None)
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return key
    if curve is not None and isinstance(curve, ec.SECP256R1):
        return key
    raise KeyFileError(
        str(path),
        f"unsupported key type {type(key).__name__.lstrip('_')}",
        "dvflow signs with Ed25519 or ECDSA P-256 keys ('dvflow keygen --type').",
    )


def key_kind(key: PrivateKey | PublicKey) -> str:
    return (
        "ed25519"
        if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey))
        else "ecdsa-p256"
    )


# -- envelopes ------------------------------------------------------------------


def sign_envelope(
    payload: bytes, key: PrivateKey, payload_type: str = PAYLOAD_TYPE
) -> dict[str, Any]:
    message = pae(payload_type, payload)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(message)
    else:
        signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    return {
        "payload": base64.b64encode(payload).decode("ascii"),
        "payloadType": payload_type,
        "signatures": [
            {"keyid": keyid(key.public_key()), "sig": base64.b64encode(signature).decode("ascii")}
        ],
    }


def envelope_bytes(envelope: dict[str, Any]) -> bytes:
    return (json.dumps(envelope, sort_keys=True, indent=2) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Envelope:
    payload: bytes
    payload_type: str
    signatures: tuple[tuple[str, str], ...]  # (keyid, sig as written)


def parse_envelope(raw: bytes, source: str) -> Envelope:
    """The envelope in ``raw``; EnvelopeUnreadableError for anything that is not one."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise EnvelopeUnreadableError(source, "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise EnvelopeUnreadableError(
            source, f"not JSON: {exc.msg} (byte {exc.pos}); truncated?"
        ) from None
    if not isinstance(data, dict):
        raise EnvelopeUnreadableError(source, "not a JSON object")
    payload, kind, sigs = data.get("payload"), data.get("payloadType"), data.get("signatures")
    if not isinstance(payload, str) or not isinstance(kind, str) or not isinstance(sigs, list):
        raise EnvelopeUnreadableError(
            source, "not a DSSE envelope (payload, payloadType and signatures are required)"
        )
    try:
        body = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeUnreadableError(source, "its payload is not base64") from None
    pairs = tuple(
        (str(s.get("keyid") or ""), s["sig"])
        for s in sigs
        if isinstance(s, dict) and isinstance(s.get("sig"), str)
    )
    if not pairs:
        raise EnvelopeUnreadableError(source, "it holds no signature")
    return Envelope(body, kind, pairs)


def verify_envelope(
    envelope: Envelope, trusted: Sequence[PublicKey], source: str, payload_type: str = PAYLOAD_TYPE
) -> PublicKey:
    """The trusted key one of the signatures verifies with; raises when none does.

    Every signature is tried with every trusted key: the keyid picks nothing.
    """
    if envelope.payload_type != payload_type:
        raise PayloadTypeError(source, envelope.payload_type, payload_type)
    message = pae(envelope.payload_type, envelope.payload)
    for _, sig in envelope.signatures:
        try:
            raw = base64.b64decode(sig, validate=True)
        except (binascii.Error, ValueError):
            continue  # not a DSSE signature: it verifies nothing
        for key in trusted:
            if _verifies(key, raw, message):
                return key
    raise SignatureError(source, [k for k, _ in envelope.signatures], len(trusted))


def _verifies(key: PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True
