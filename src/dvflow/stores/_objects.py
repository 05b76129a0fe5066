"""What DVC stores, object by object: the inventory of a remote and of the cache.

DVC 3 keeps a file's bytes at ``files/md5/ab/cdef…`` (a directory's listing
at ``…cdef….dir``), both in the cache and in a remote; DVC 2 kept them at
``ab/cdef…`` at the root, and such objects stay in old remotes. Everything
that knows this layout is here (``object_path``, ``md5_of``). Objects of the
old layout are listed apart (``legacy``) and never deleted: their md5s are
DVC 2's (text files hashed after dos2unix), which no DVC 3 pointer names.

A cloud-versioned remote (``version_aware`` or ``worktree``) keeps each file
at its work-tree path, one object version per push: it is listed version by
version (S3 only) and deleted by version id.

A listing reads one folder per request (``files/md5/00`` … ``ff``), a few
folders at once, and reports progress per folder: a remote of 100,000
objects is a few hundred requests, never one per object.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from dvflow.core._exceptions import DvcError
from dvflow.core._redact import Redactor

from ._dvc import DvcProject, dvc_errors, in_repo
from ._remote import check_bucket, remote_errors

if TYPE_CHECKING:
    from dvflow.core._dvcfiles import CloudVersions

MD5_FOLDER = "files/md5"
_OBJECT = re.compile(r"^files/md5/([0-9a-f]{2})/([0-9a-f]{30}(?:\.dir)?)$")
_LEGACY = re.compile(r"^([0-9a-f]{2})/([0-9a-f]{30}(?:\.dir)?)$")
_HEX2 = re.compile(r"^[0-9a-f]{2}$")
_BATCH = 1000  # S3's limit per DeleteObjects request

# (what is being done, done so far, total or None when unknown)
Progress = Callable[[str, int, int | None], None]


def _no_progress(what: str, done: int, total: int | None) -> None:
    return None


def object_path(md5: str) -> str:
    """Where DVC 3 keeps ``md5`` under a remote's or the cache's root."""
    return f"{MD5_FOLDER}/{md5[:2]}/{md5[2:]}"


def md5_of(path: str) -> str | None:
    """The md5 (``….dir`` for a listing) of an object path of DVC 3's layout, else None."""
    found = _OBJECT.match(path)
    return found.group(1) + found.group(2) if found else None


def legacy_md5_of(path: str) -> str | None:
    """The (DVC 2) md5 of an object at the root of a remote (``ab/cdef…``), else None."""
    found = _LEGACY.match(path)
    return found.group(1) + found.group(2) if found else None


@dataclass(frozen=True)
class StoredObject:
    """One object (or one version of it) in a remote or in the cache.

    ``path`` is relative to the remote's (or the cache's) root. ``md5`` is
    None for an object whose content no path tells (a version of a
    cloud-versioned remote: ``etag`` may); ``mtime`` in seconds since the epoch.
    """

    path: str
    size: int
    md5: str | None
    mtime: float | None = None
    version_id: str | None = None
    latest: bool = True
    etag: str | None = None
    where: str = "remote"

    def plan_entry(self) -> dict[str, Any]:
        """The object as a plan file lists it (gc's and erase's alike)."""
        return {
            "md5": self.md5,
            "path": self.path,
            "size": self.size,
            "version_id": self.version_id,
            "where": self.where,
        }

    @classmethod
    def from_plan(cls, entry: dict[str, Any]) -> StoredObject:
        return cls(
            path=str(entry["path"]),
            size=int(entry["size"]),
            md5=entry.get("md5"),
            version_id=entry.get("version_id"),
            where=str(entry["where"]),
        )


@dataclass(frozen=True)
class Inventory:
    """Everything one listing found: DVC 3 objects, DVC 2 ones, anything else."""

    objects: tuple[StoredObject, ...] = ()
    legacy: tuple[StoredObject, ...] = ()
    other: tuple[StoredObject, ...] = ()

    @property
    def bytes(self) -> int:
        return sum(o.size for o in self.objects)


@dataclass
class RemoteInfo:
    """A DVC remote as gc and storage name it (the URL without credentials)."""

    name: str
    url: str
    scheme: str
    versioned: bool


@dataclass
class ObjectStore:
    """One DVC remote of one project: list, read listings, delete, forget DVC's index."""

    project: DvcProject
    info: RemoteInfo
    _remote: Any = None
    _listings: dict[str, dict[str, str] | None] = field(default_factory=dict)
    _cloud: CloudVersions | None = None

    @classmethod
    def open(cls, project: DvcProject, name: str | None = None) -> ObjectStore:
        """The remote ``name`` (default: the project's default remote)."""
        with dvc_errors():
            config = project.repo.config
            chosen = name or config["core"].get("remote")
            remotes = config["remote"]
        if not chosen:
            raise DvcError(
                "no DVC remote is configured",
                hint="Add one: 'dvc remote add -d NAME URL', or name one with --remote.",
            )
        if chosen not in remotes:
            known = ", ".join(sorted(remotes)) or "none"
            raise DvcError(
                f"no DVC remote named {chosen!r} (configured: {known})",
                hint="List them with 'dvc remote list'.",
            )
        settings = remotes[chosen]
        url = str(settings.get("url") or "")
        versioned = bool(settings.get("version_aware") or settings.get("worktree"))
        info = RemoteInfo(chosen, Redactor().redact(url), _scheme(url), versioned)
        store = cls(project, info)
        with dvc_errors(), in_repo(project.root), remote_errors(url):
            store._remote = project.repo.cloud.get_remote(chosen, "gc")
        return store

    @property
    def _url(self) -> str:
        return self.info.url

    def _root(self) -> str:
        return str(self._remote.path).rstrip("/")

    def _relative(self, full: str) -> str:
        root = self._root()
        full = full.rstrip("/")
        return full[len(root) + 1 :] if full.startswith(root + "/") else full

    # -- listing --------------------------------------------------------------

    def inventory(self, progress: Progress = _no_progress, jobs: int = 8) -> Inventory:
        """Every object in the remote, with its size and time (and version, if versioned)."""
        with dvc_errors(), in_repo(self.project.root), remote_errors(self._url):
            if self.info.versioned:
                return self._list_versions(progress)
            return self._list_md5(progress, jobs)

    def _list_md5(self, progress: Progress, jobs: int) -> Inventory:
        fs = self._remote.fs.fs  # fsspec's own, for sizes and times in one listing
        root = self._root()
        check_bucket(self._remote, self._url)
        units, found = self._units(fs, root)
        progress("listing the remote", 0, len(units))
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for done, batch in enumerate(pool.map(lambda p: _find(fs, p), units), start=1):
                found.extend(batch)
                progress("listing the remote", done, len(units))
        return self._sort([(self._relative(p), i) for p, i in found], "remote")

    @staticmethod
    def _units(fs: Any, root: str) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
        """The folders to list one by one (``files/md5/00``...), and the files at the top.

        Everything under the remote's root is listed (DVC 2's objects, the
        run-cache, anything else), so that totals are the bytes stored.
        """
        units: list[str] = []
        files: list[tuple[str, dict[str, Any]]] = []
        for path, info in _ls_detail(fs, root):
            if info.get("type") != "directory":
                files.append((path, info))
            elif _name(path) != "files":
                units.append(path)
            else:
                for sub, sub_info in _ls_detail(fs, path):
                    if sub_info.get("type") != "directory":
                        files.append((sub, sub_info))
                    elif _name(sub) != "md5":
                        units.append(sub)
                    else:
                        units.extend(p for p, _ in _ls_detail(fs, sub))
        return sorted(units), files

    def _list_versions(self, progress: Progress) -> Inventory:
        fs = self._remote.fs.fs
        if self.info.scheme != "s3":
            raise DvcError(
                f"listing the versions of a {self.info.scheme} remote is not supported yet",
                hint="dvflow lists and deletes object versions on S3 only; use the cloud's "
                "lifecycle rules there.",
            )
        progress("listing the remote's object versions", 0, None)
        found = fs.find(self._root(), detail=True, versions=True)
        objects = []
        for name, info in found.items():
            if info.get("type") == "directory":
                continue
            path = self._relative(name.partition("?versionId=")[0])
            etag = str(info.get("ETag") or "").strip('"') or None
            objects.append(
                StoredObject(
                    path=path,
                    size=int(info.get("size") or 0),
                    md5=None,
                    mtime=_mtime(info),
                    version_id=str(info.get("VersionId") or "") or None,
                    latest=bool(info.get("IsLatest", True)),
                    etag=etag,
                )
            )
        progress("listing the remote's object versions", len(objects), len(objects))
        objects.sort(key=lambda o: (o.path, o.version_id or ""))
        return Inventory(objects=tuple(objects))

    @staticmethod
    def _sort(found: Iterable[tuple[str, dict[str, Any]]], where: str) -> Inventory:
        objects, legacy, other = [], [], []
        for path, info in found:
            size = int(info.get("size") or 0)
            if md5 := md5_of(path):
                objects.append(StoredObject(path, size, md5, _mtime(info), where=where))
            elif md5 := legacy_md5_of(path):
                legacy.append(StoredObject(path, size, md5, _mtime(info), where=where))
            else:
                other.append(StoredObject(path, size, None, _mtime(info), where=where))
        key: Callable[[StoredObject], str] = lambda o: o.path  # noqa: E731 - one sort key
        return Inventory(
            objects=tuple(sorted(objects, key=key)),
            legacy=tuple(sorted(legacy, key=key)),
            other=tuple(sorted(other, key=key)),
        )

    # -- directory listings ---------------------------------------------------

    def listing(self, md5: str) -> dict[str, str] | None:
        """``{relpath: md5}`` of a ``.dir`` object: the cache's copy, else the remote's.

        None when neither holds it. A cloud-versioned remote has no ``.dir``
        objects: the pointer files list the directory file by file.
        """
        if md5 not in self._listings:
            self._listings[md5] = self._read_listing(md5)
        return self._listings[md5]

    def prefetch(self, md5s: Iterable[str], jobs: int = 8) -> None:
        """Read the listings of many ``.dir`` objects at once (several requests in flight)."""
        wanted = sorted({m for m in md5s if m.endswith(".dir") and m not in self._listings})
        if not wanted:
            return
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            for md5, listing in zip(wanted, pool.map(self._read_listing, wanted), strict=True):
                self._listings[md5] = listing

    def _read_listing(self, md5: str) -> dict[str, str] | None:
        cached = cache_listing(self.project, md5)
        if cached is not None:
            return cached
        if self.info.versioned:
            return self._cloud_dirs().get(md5)
        import json

        with dvc_errors(), remote_errors(self._url):
            try:
                with self._remote.fs.open(f"{self._root()}/{object_path(md5)}", "r") as fobj:
                    return _parse_listing(json.load(fobj))
            except (FileNotFoundError, ValueError):
                return None

    def _versions(self) -> CloudVersions:
        if self._cloud is None:
            self._cloud = self.project.cloud_versions()
        return self._cloud

    def _cloud_dirs(self) -> dict[str, dict[str, str]]:
        return self._versions().dirs

    def cloud_files(self) -> dict[str, set[tuple[str, str]]]:
        """``{md5: {(path, version_id)}}`` the pointer files record (cloud-versioned remotes)."""
        return self._versions().files

    # -- deleting -------------------------------------------------------------

    def delete(self, objects: Sequence[StoredObject], progress: Progress = _no_progress) -> int:
        """Delete exactly ``objects`` (by version id on a cloud-versioned remote); returns how many.

        An object already gone counts as deleted: the plan's end state holds.
        """
        done = 0
        progress("deleting from the remote", 0, len(objects))
        with dvc_errors(), in_repo(self.project.root), remote_errors(self._url):
            for start in range(0, len(objects), _BATCH):
                batch = objects[start : start + _BATCH]
                if self.info.versioned:
                    self._delete_versions(batch)
                else:
                    self._delete_paths(batch)
                done += len(batch)
                progress("deleting from the remote", done, len(objects))
        return done

    def _delete_paths(self, batch: Sequence[StoredObject]) -> None:
        fs = self._remote.fs.fs
        paths = [f"{self._root()}/{o.path}" for o in batch]
        present = [p for p in paths if fs.exists(p)] if self.info.scheme == "local" else paths
        if present:
            with contextlib.suppress(FileNotFoundError):
                fs.rm(present)

    def _delete_versions(self, batch: Sequence[StoredObject]) -> None:
        fs = self._remote.fs.fs
        bucket, _, prefix = self._root().partition("/")
        keys = [
            {"Key": f"{prefix}/{o.path}" if prefix else o.path, "VersionId": str(o.version_id)}
            for o in batch
        ]
        fs.call_s3("delete_objects", Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        fs.invalidate_cache()

    def forget_index(self) -> None:
        """Clear DVC's own memory of what this remote holds, so a later push checks again.

        DVC keeps an index of each remote's objects under its site cache
        (``index/<sha256 of the remote's URL>``); after a deletion it would
        skip uploading objects it believes are there (``dvc gc -c`` clears it too).
        """
        from dvc_data.hashfile.db import get_index

        with dvc_errors():
            for odb in (self._remote.odb, self._remote.legacy_odb):
                with contextlib.closing(get_index(odb)) as index:
                    index.clear()
            with contextlib.suppress(KeyError, AttributeError):
                self.project.repo.data_index.delete_node(("remote", self.info.name))


# -- the cache -------------------------------------------------------------------


def cache_root(project: DvcProject) -> Path:
    """The cache's root folder (``.dvc/cache``: objects under ``files/md5/``)."""
    with dvc_errors():
        path = Path(project.repo.cache.local.path)
    return path.parent.parent if path.as_posix().endswith(MD5_FOLDER) else path


def list_cache(project: DvcProject, progress: Progress = _no_progress) -> Inventory:
    """Every object in the project's DVC cache (``files/md5`` only)."""
    base = cache_root(project) / MD5_FOLDER
    try:
        folders = sorted(
            (p for p in os.scandir(base) if p.is_dir() and _HEX2.match(p.name)),
            key=lambda p: p.name,
        )
    except FileNotFoundError:
        return Inventory()
    found: list[tuple[str, dict[str, Any]]] = []
    progress("listing the cache", 0, len(folders))
    for done, folder in enumerate(folders, start=1):
        for item in os.scandir(folder.path):
            if item.is_file():
                st = item.stat()
                rel = f"{MD5_FOLDER}/{folder.name}/{item.name}"
                found.append((rel, {"size": st.st_size, "mtime": st.st_mtime}))
        progress("listing the cache", done, len(folders))
    return ObjectStore._sort(found, "cache")


def delete_from_cache(project: DvcProject, objects: Sequence[StoredObject]) -> int:
    """Remove ``objects`` from the cache (read-only files DVC made); returns how many."""
    root = cache_root(project)
    for obj in objects:
        (root / obj.path).unlink(missing_ok=True)
    return len(objects)


def cache_listing(project: DvcProject, md5: str) -> dict[str, str] | None:
    """``{relpath: md5}`` of a ``.dir`` object in the cache, None when it is not there."""
    import json

    path = cache_root(project) / object_path(md5)
    try:
        return _parse_listing(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def _parse_listing(data: Any) -> dict[str, str] | None:
    if not isinstance(data, list):
        return None
    return {
        str(e["relpath"]): str(e["md5"])
        for e in data
        if isinstance(e, dict) and e.get("md5") and e.get("relpath")
    }


# -- fsspec details ----------------------------------------------------------------


def _scheme(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if not scheme or len(scheme) == 1:  # a Windows drive letter is a local path
        return "local"
    return {"gcs": "gs", "azure": "azure", "az": "azure", "remote": "local"}.get(scheme, scheme)


def _name(path: str) -> str:
    return path.rstrip("/").rpartition("/")[2]


def _ls_detail(fs: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    try:
        found = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    return [(str(i["name"]).rstrip("/"), dict(i)) for i in found]


def _find(fs: Any, path: str) -> list[tuple[str, dict[str, Any]]]:
    found = fs.find(path, detail=True)
    if not isinstance(found, dict):  # DVC's local file system yields names only
        found = {str(p): fs.info(p) for p in found}
    return [(str(p), dict(i)) for p, i in found.items() if i.get("type", "file") == "file"]


def _mtime(info: dict[str, Any]) -> float | None:
    """The object's time, whichever key and type its file system uses."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, datetime.datetime):
            return value.timestamp()
        if isinstance(value, str) and value:
            with contextlib.suppress(ValueError):
                return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None
