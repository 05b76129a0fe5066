"""A bundle: the model's envelope, then one envelope per upstream stage run (JSON lines).

``dvflow attest --stages`` writes one DSSE envelope per line (in-toto's
bundle form): first the target's, then one for every other stage run of its
lineage closure, whose subjects are that run's outputs. A verifier walks from
the model to the raw data: each stage statement must be signed by a trusted
key, be about a run the model's statement names (``byproducts``), and give
every output the model's closure read the sha256 the model's statement
attests for it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from dvflow.proof._checks import Check

from ._errors import DependencyDriftError


def split_bundle(raw: bytes) -> list[bytes]:
    """The envelopes of ``raw``: one (a JSON document) or one per line (a bundle)."""
    try:
        json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        lines = [line for line in raw.splitlines() if line.strip()]
        if len(lines) > 1 and all(_is_json(line) for line in lines):
            return lines
    return [raw]  # a single envelope, or whatever parse_envelope will name as broken


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return True


def bundle_bytes(envelopes: Sequence[Mapping[str, Any]]) -> bytes:
    """One compact JSON envelope per line, keys sorted."""
    text = "".join(json.dumps(e, sort_keys=True, separators=(",", ":")) + "\n" for e in envelopes)
    return text.encode("utf-8")


def check_walk(model: Mapping[str, Any], stages: Sequence[Mapping[str, Any]], source: str) -> Check:
    """Each stage statement is about a run the model's names, and agrees on the shared data."""
    details = model["predicate"]["runDetails"]
    runs = {b["annotations"]["run_id"] for b in details["byproducts"]}
    attested = {
        (d["name"], d["annotations"]["dvc_md5"]): d["digest"]["sha256"]
        for d in model["predicate"]["buildDefinition"]["resolvedDependencies"]
        if "dvc_md5" in d.get("annotations", {})
    }
    problems: list[str] = []
    linked: set[tuple[str, Any]] = set()
    for stage in stages:
        run = stage["predicate"]["runDetails"]["metadata"]["invocationId"]
        if run not in runs:
            problems.append(
                f"a stage statement is about run {run}, which the model's does not name"
            )
            continue
        for subject in stage["subject"]:
            notes = subject.get("annotations", {})
            key = (notes.get("dvc_path") or subject["name"], notes.get("dvc_md5"))
            if key in attested and notes.get("dvc_path") is None:
                linked.add(key)
                if attested[key] != subject["digest"]["sha256"]:
                    said = subject["digest"]["sha256"]
                    problems.append(
                        f"{subject['name']}: run {run} attests sha256 {said}, "
                        f"the model's statement {attested[key]}"
                    )
            elif key in attested:
                linked.add(key)  # a folder: its files' sha256 make the folder's, checked below
    problems += _folders(attested, stages)
    if problems:
        raise DependencyDriftError(source, problems)
    return Check(
        "stages",
        "pass",
        f"{len(stages)} stage statement(s) signed; {len(linked)} output(s) link to the "
        "model's inputs",
    )


def _folders(
    attested: Mapping[tuple[str, Any], str], stages: Sequence[Mapping[str, Any]]
) -> list[str]:
    """A folder output: its files' sha256 (the stage's subjects) must give the attested sha256."""
    from ._hashing import tree_sha256

    files: dict[tuple[str, Any], dict[str, str]] = {}
    for stage in stages:
        for subject in stage["subject"]:
            notes = subject.get("annotations", {})
            folder = notes.get("dvc_path")
            if folder:
                rel = subject["name"][len(folder) + 1 :]
                files.setdefault((folder, notes.get("dvc_md5")), {})[rel] = subject["digest"][
                    "sha256"
                ]
    return [
        f"{folder}: its files as a stage attests them make sha256 {tree_sha256(listing)}, "
        f"the model's statement {attested[(folder, md5)]}"
        for (folder, md5), listing in sorted(files.items())
        if (folder, md5) in attested and tree_sha256(listing) != attested[(folder, md5)]
    ]
