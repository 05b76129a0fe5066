"""The objects an erasure deletes: where they are (default remote, local cache), and deleting them.

Objects are named by md5 and by their path relative to the remote's (or the
cache's) root, ``files/md5/ab/cdef...``, as DVC 3 lays them out. Deleting goes
through DVC's own file system for the remote, so every remote DVC reaches
(local folder, S3, GCS, Azure...) works with the credentials DVC resolves.
Deleting is gc's (``_objects``); this module finds the few objects an erasure names
without listing the whole remote.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ._dvc import DvcProject, dvc_errors, in_repo
from ._objects import ObjectStore, StoredObject, delete_from_cache, object_path
from ._remote import remote_errors


@dataclass(frozen=True)
class RemoteFacts:
    name: str | None
    url: str | None
    versioned: bool  # cloud-versioned remote, or a bucket with object versioning on


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
            StoredObject(path=object_path(md5), size=size, md5=md5, where="cache")
            for md5, size in _cache_sizes(project, wanted)
        ]
        if project.remote_url() and not project.remote_is_versioned():
            found += [
                StoredObject(path=object_path(md5), size=size, md5=md5, where="remote")
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
    """Delete each object from where the plan says (gc's deleting); returns those listed.

    An object already gone counts as deleted: the plan's end state holds.
    """
    project = DvcProject(project_root)
    try:
        remote = [o for o in objects if o.where == "remote"]
        if remote:
            store = ObjectStore.open(project)
            store.delete(remote)
            store.forget_index()
        delete_from_cache(project, [o for o in objects if o.where == "cache"])
    finally:
        project.close()
    return list(objects)


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
