"""The errors of signed attestations, one exit code per way an attestation fails.

All are ``DvflowError`` subclasses (``core/_exceptions``), so the CLI's one
handler prints them as ``error:`` + ``hint:`` with their exit code::

    DvflowError
    ├── KeyFileError                 exit 2   a key file dvflow cannot use
    └── AttestationError             exit 1   (the gates' refusal)
        ├── EnvelopeUnreadableError  exit 20  not JSON, truncated, not a DSSE statement
        ├── PayloadTypeError         exit 21  the envelope's payloadType is not in-toto's
        ├── SignatureError           exit 22  no signature verifies with a trusted public key
        ├── SubjectMismatchError     exit 23  a model file's sha256 differs, or another model
        ├── DependencyDriftError     exit 24  a dependency no longer matches the records
        └── BuilderNotAllowedError   exit 25  the builder id is not on the allow-list

docs/cli.md lists the codes.
"""

from __future__ import annotations

from collections.abc import Sequence

from dvflow.core._exceptions import DvflowError


class KeyFileError(DvflowError):
    """A key file that is missing, not a PEM key, of another type, or locked."""

    exit_code = 2

    def __init__(self, path: str, problem: str, hint: str | None = None) -> None:
        self.path, self.problem = path, problem
        super().__init__(
            f"key {path}: {problem}",
            hint=hint or "Make a key pair with 'dvflow keygen' (Ed25519, or ECDSA P-256).",
        )


class AttestationError(DvflowError):
    """An attestation that does not prove what it claims (the gates refuse with exit 1)."""

    exit_code = 1

    def __init__(self, source: str, problem: str, hint: str | None = None) -> None:
        self.source, self.problem = source, problem
        super().__init__(f"attestation {source}: {problem}", hint=hint)


class EnvelopeUnreadableError(AttestationError):
    exit_code = 20

    def __init__(self, source: str, problem: str) -> None:
        super().__init__(
            source,
            problem,
            "The file is not a whole dvflow attestation (a DSSE envelope of an in-toto "
            "statement): copy it again, or make a new one with 'dvflow attest'.",
        )


class PayloadTypeError(AttestationError):
    exit_code = 21

    def __init__(self, source: str, found: str, expected: str) -> None:
        self.found, self.expected = found, expected
        super().__init__(
            source,
            f"payloadType is {found!r}, not {expected!r}",
            "The envelope was changed or is not an in-toto attestation; do not trust it.",
        )


class SignatureError(AttestationError):
    exit_code = 22

    def __init__(self, source: str, keyids: Sequence[str], trusted: int) -> None:
        self.keyids = tuple(keyids)
        named = ", ".join(k[:16] or "(none)" for k in keyids) or "none"
        super().__init__(
            source,
            f"no signature verifies with the {trusted} trusted public key(s) "
            f"(the envelope's keyids: {named})",
            "It was signed by another key, or its payload was changed after signing. "
            "Pass the signer's public key with --pubkey; a keyid alone is never trusted.",
        )


class SubjectMismatchError(AttestationError):
    exit_code = 23

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            source,
            "the model is not what was attested: " + "; ".join(problems),
            "Do not deploy these files: they are not the bytes that were signed.",
        )


class DependencyDriftError(AttestationError):
    exit_code = 24

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            source,
            "the dependencies no longer match the records: " + "; ".join(problems),
            "The records or the data changed after the attestation was signed: find out "
            "who changed them ('dvflow verify TARGET' checks the records' digests).",
        )


class BuilderNotAllowedError(AttestationError):
    exit_code = 25

    def __init__(self, source: str, builder: str, allowed: Sequence[str]) -> None:
        self.builder = builder
        super().__init__(
            source,
            f"builder {builder!r} is not allowed (allowed: {', '.join(allowed)})",
            "Accept only attestations made where you trust the build (e.g. your CI).",
        )
