"""The attestation gates: ``promote --require-attestation`` and ``check --require-attestation``.

A version passes when the attestation the store holds for it (logged by
``dvflow attest``) verifies with one of the trusted public keys, online:
signature, target, the model's sha256 now, and no drift. Anything else is a
failed check (with the verifier's message), never an exception, so the gate
prints every check before it refuses.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

from dvflow.core._exceptions import DvflowError
from dvflow.proof._checks import Check

from ._dsse import load_public_key
from ._errors import AttestationError, KeyFileError

CHECK = "attested"


def attestation_check(
    target: str,
    path: str | os.PathLike[str] = ".",
    *,
    pubkeys: Sequence[str | os.PathLike[str]],
    tracking_uri: str | None = None,
) -> Check:
    """``attested`` passes when ``target``'s stored attestation verifies with a trusted key."""
    from ._verify_attest import verify_attestation

    try:
        result = verify_attestation(target, path, pubkeys=pubkeys, tracking_uri=tracking_uri)
    except KeyFileError:
        raise  # the gate's own argument is wrong: a usage error, not a verdict
    except AttestationError as exc:
        return Check(CHECK, "fail", f"{target}: {exc.problem}", exc.hint)
    except DvflowError as exc:  # a version that does not exist, a store that does not answer
        return Check(CHECK, "fail", f"{target}: {exc.message}", exc.hint)
    return Check(CHECK, "pass", f"{target}: signed by keyid {result.keyid[:16]}, verified")


def attestation_gate(
    pubkeys: Sequence[str | os.PathLike[str]],
    path: str | os.PathLike[str] = ".",
    tracking_uri: str | None = None,
) -> Callable[[str], Check]:
    """``attestation_check`` with its keys read now: a bad key file fails before any work."""
    for key in pubkeys:
        load_public_key(key)

    def gate(target: str) -> Check:
        return attestation_check(target, path, pubkeys=pubkeys, tracking_uri=tracking_uri)

    return gate


def models_attested(
    versions: Mapping[str, str | None],
    gate: Callable[[str], Check],
) -> Check:
    """One ``attested`` check over models (name -> the version dvc.lock's model is, or None)."""
    if not versions:
        return Check(CHECK, "pass", "no model declared in dvc.yaml's artifacts")
    failed = []
    for name, version in sorted(versions.items()):
        if version is None:
            failed.append(f"{name}: no registered version has the md5 in dvc.lock")
            continue
        check = gate(f"models:/{name}/{version}")
        if not check.ok:
            failed.append(check.detail)
    if failed:
        return Check(
            CHECK,
            "fail",
            "; ".join(failed),
            "Attest each model version built from this commit: "
            "'dvflow attest models:/NAME/VERSION --key KEY' (in CI, with the CI's key).",
        )
    return Check(CHECK, "pass", f"{len(versions)} model(s) at HEAD have a verified attestation")
