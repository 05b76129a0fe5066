"""The bytes a DVC pointer names, found and hashed: DVC's cache, else Git, else the remote.

Data comes from DVC's cache (fetched from the default remote when missing);
a Git-tracked input (a stage's script) from the blob at the recorded commit,
else from the work tree when it still holds those bytes (a dirty run).
Each file's md5 is checked against the one the record or ``.dir`` listing
names before its sha256 is used.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ._hashing import bytes_digests, file_digests, many_file_digests, tree_sha256

if TYPE_CHECKING:
    from dvflow.stores._dvc import DvcProject


@dataclass(frozen=True)
class Digested:
    """One data version: its DVC md5 and sha256 (a directory's also per file)."""

    path: str
    md5: str
    sha256: str
    files: dict[str, str] = field(default_factory=dict)  # relpath -> sha256, directories only


class ContentProblem(Exception):
    """The bytes cannot be found, or are not the ones the md5 names (a message, no exit code)."""


def digest(
    project: DvcProject, root: Path, path: str, md5: str, commit: str | None, *, fetch: bool = True
) -> Digested:
    """sha256 of the data version (``path``, ``md5``); ContentProblem when it cannot be proven."""
    if md5.endswith(".dir"):
        return _directory(project, path, md5, fetch=fetch)
    obj = project.object_path(md5)
    if obj.is_file():
        found, sha = file_digests(obj)
    else:
        blob = _git_blob(root, commit, path)
        if blob is not None and bytes_digests(blob)[0] == md5:
            return Digested(path, md5, bytes_digests(blob)[1])
        # A dirty run's changed script is in no commit: the work tree may still hold it.
        local = root / path
        inside = not Path(path).is_absolute() and ".." not in Path(path).parts
        if inside and local.is_file() and not local.is_symlink():
            found, sha = file_digests(local)
            if found == md5:
                return Digested(path, md5, sha)
        if not fetch or not _fetched(project, md5):
            raise ContentProblem(
                f"{path} (md5 {md5}) is in neither DVC's cache, the DVC remote nor Git"
            )
        found, sha = file_digests(obj)
    if found != md5:
        raise ContentProblem(f"DVC's cache holds other bytes for {path}: md5 {found}, not {md5}")
    return Digested(path, md5, sha)


def _directory(project: DvcProject, path: str, md5: str, *, fetch: bool) -> Digested:
    listing_file = project.object_path(md5)
    if not listing_file.is_file() and not (fetch and _fetched(project, md5)):
        raise ContentProblem(f"{path} (md5 {md5}) is in neither DVC's cache nor the DVC remote")
    found = bytes_digests(listing_file.read_bytes())[0]
    if found != md5.removesuffix(".dir"):
        raise ContentProblem(f"DVC's .dir listing of {path} was changed: md5 {found}.dir")
    listing = project.listing(md5)
    objects = {rel: project.object_path(m) for rel, m in listing.items()}
    if any(not p.is_file() for p in objects.values()) and not (fetch and _fetched(project, md5)):
        missing = sorted(rel for rel, p in objects.items() if not p.is_file())
        raise ContentProblem(f"{path}: {len(missing)} file(s) missing, e.g. {missing[0]}")
    rels = sorted(objects)
    digests = many_file_digests(objects[r] for r in rels)
    files: dict[str, str] = {}
    for rel, (got, sha) in zip(rels, digests, strict=True):
        if got != listing[rel]:
            raise ContentProblem(
                f"DVC's cache holds other bytes for {path}/{rel}: md5 {got}, not {listing[rel]}"
            )
        files[rel] = sha
    return Digested(path, md5, tree_sha256(files), files)


def _fetched(project: DvcProject, md5: str) -> bool:
    if not project.remote_url():
        return False
    return not project.fetch([md5])


def _git_blob(root: Path, commit: str | None, path: str) -> bytes | None:
    if not commit:
        return None
    done = subprocess.run(
        ["git", "cat-file", "blob", f"{commit}:{path}"], cwd=root, capture_output=True, check=False
    )
    return done.stdout if done.returncode == 0 else None
