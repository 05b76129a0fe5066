"""The objects an erasure deletes: where they are (default remote, local cache), and deleting them.

Objects are named by md5 and by their path relative to the remote's (or the
cache's) root, ``files/md5/ab/cdef...``, as DVC 3 lays them out. Deleting goes
through DVC's own file system for the remote, so every remote DVC reaches
(local folder, S3, GCS, Azure...) works with the credentials DVC resolves.
Shaped as gc's ``_objects`` will be; the two are to be joined.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._dvc import DvcProject, dvc_errors, in_repo
from ._remote import remote_errors


@dataclass(frozen=True)
class StoredObject:
    """One object as a plan lists it."""

    md5: str
    path: str  # relative to the remote's (or cache's) root: files/md5/ab/cdef...
    size: int
    where: str  # "remote" | "cache"
    version_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "md5": self.md5,
            "path": self.path,
            "size": self.size,
            "version_id": self.version_id,
            "where": self.where,
        }


@dataclass(frozen=True)
class RemoteFacts:
    name: str | None
    url: str | None
    versioned: bool  # cloud-versioned remote, or a bucket with object versioning on


def object_path(md5: str) -> str:
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def remote_facts(project_root: Path) -> RemoteFacts:
    """The default remote's name, URL (not redacted here) and whether it keeps old versions."""
    project = DvcProject(project_root)
    try:
        with dvc_errors():
            name = project.repo.config["core"].get("remote")
        url = project.remote_url()
        versioned = project.remote_is_versioned()
        if not versioned and url and url.startswith("s3://"):
            versioned = project.bucket_versioning() in ("Enabled", "Suspended")
        return RemoteFacts(str(name) if name else None, url, versioned)
    finally:
        project.close()


def find_objects(project_root: Path, md5s: Iterable[str]) -> list[StoredObject]:
    """The objects among ``md5s`` that the default remote and the local cache hold, with sizes."""
    wanted = sorted(set(md5s))
    project = DvcProject(project_root)
    try:
        found = [
            StoredObject(md5, object_path(md5), size, "cache")
            for md5, size in _cache_sizes(project, wanted)
        ]
        if project.remote_url() and not project.remote_is_versioned():
            found += [
                StoredObject(md5, object_path(md5), size, "remote")
                for md5, size in _remote_sizes(project, wanted)
            ]
    finally:
        project.close()
    return sorted(found, key=lambda o: (o.where, o.path, o.version_id or ""))


def _cache_sizes(project: DvcProject, md5s: Sequence[str]) -> list[tuple[str, int]]:
    sizes = []
    for md5 in md5s:
        local = project.object_path(md5)
        if local.is_file():
            sizes.append((md5, local.stat().st_size))
    return sizes


def _remote_sizes(project: DvcProject, md5s: Sequence[str]) -> list[tuple[str, int]]:
    with dvc_errors(), in_repo(project.root), remote_errors(project.remote_url()):
        odb = project.repo.cloud.get_remote_odb(None, "erase")
        paths = [odb.oid_to_path(m) for m in md5s]
        present = odb.fs.exists(paths) if paths else []
        sizes = []
        for md5, path, there in zip(md5s, paths, present, strict=True):
            if there:
                sizes.append((md5, int(odb.fs.size(path) or 0)))
    return sizes


def delete_objects(project_root: Path, objects: Sequence[StoredObject]) -> list[StoredObject]:
    """Delete each object from where the plan says; returns those deleted (gone ones skipped)."""
    project = DvcProject(project_root)
    deleted: list[StoredObject] = []
    try:
        for obj in (o for o in objects if o.where == "cache"):
            local = project.object_path(obj.md5)
            if local.is_file():
                local.chmod(0o600)  # DVC's cache objects are read-only
                local.unlink()
                deleted.append(obj)
        remote = [o for o in objects if o.where == "remote"]
        if remote:
            deleted += _delete_remote(project, remote)
    finally:
        project.close()
    return deleted


def delete_workspace(project_root: Path, paths: Sequence[str]) -> list[str]:
    """Delete work-tree copies (files or folders) of erased data; returns those deleted."""
    import shutil

    gone = []
    for rel in paths:
        target = project_root / rel
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
        else:
            continue
        gone.append(rel)
    return gone


def _delete_remote(project: DvcProject, objects: Sequence[StoredObject]) -> list[StoredObject]:
    deleted = []
    with dvc_errors(), in_repo(project.root), remote_errors(project.remote_url()):
        remote = project.repo.cloud.get_remote(None, "erase")
        fs = remote.fs
        for obj in objects:
            path = fs.join(remote.path, obj.path)
            if obj.version_id:
                path = fs.version_path(path, obj.version_id)
            if fs.exists(path):
                fs.rm(path)
                deleted.append(obj)
    return deleted
