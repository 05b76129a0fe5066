"""What files a directory version holds: DVC's ``.dir`` listings, for lineage through folders.

A stage that depends on ``data/`` consumed every file in it, so a file's
impact goes on through each directory version that lists it, and a file
inside an output directory was made by that directory's producer. DVC
keeps a listing in its cache for every directory it stored (outputs and
``dvc add``); a directory dependency tracked by Git (code, or a folder
holding ``.dvc`` files) has none there, so its current version is listed
from the work tree when its hash matches. Nothing here imports DVC.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from dvflow.core._dvcfiles import dir_md5
from dvflow.stores._confine import FILE_MD5, MD5, unsafe_reason

Listing = dict[str, str]
# Listing a folder from the work tree hashes its files; past this size the
# query would wait on the disk for a link the cache usually gives anyway.
WORKTREE_LIMIT = 512 * 1024 * 1024


def cache_folders(root: Path) -> list[Path]:
    """Where DVC keeps objects: its cache (``cache.dir`` if set), then local remotes.

    A remote that is a folder on this machine costs a file read, like the
    cache, and has the listings a fresh clone's empty cache lacks; cloud
    remotes are left to ``dvc pull``.
    """
    caches = [root / ".dvc" / "cache"]
    remotes = []
    for name in ("config", "config.local"):
        config = _read_config(root / ".dvc" / name)
        if config is None:
            continue
        configured = config.get("cache", "dir", fallback=None)
        if configured:
            caches.insert(0, (root / ".dvc" / _unquote(configured)).resolve())
        remotes += [
            folder
            for section in config.sections()
            if section.strip("'\"").startswith("remote ")
            and (folder := _local_folder(root, config.get(section, "url", fallback="")))
        ]
    return caches + remotes


def _read_config(path: Path) -> configparser.ConfigParser | None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    return parser


def _unquote(value: str) -> str:
    return value.strip().strip("'\"")


def _local_folder(root: Path, url: str) -> Path | None:
    """The folder a remote URL names, when it is one on this machine."""
    url = _unquote(url)
    if url.startswith("file://"):
        url = url[len("file://") :]
    elif not url or "://" in url:
        return None
    return (root / ".dvc" / url).resolve()


def from_cache(folders: Iterable[Path], md5: str) -> Listing | None:
    """The listing of one ``.dir`` md5, from the cache (DVC 3 and DVC 2 layouts).

    An md5 from Git history or the store is used in a path only when it is one.
    """
    if not MD5.fullmatch(md5):
        return None
    for folder in folders:
        for base in (folder / "files" / "md5", folder):
            path = base / md5[:2] / md5[2:]
            try:
                data = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue
            listing = _parse(data)
            if listing is not None:
                return listing
    return None


def _parse(data: object) -> Listing | None:
    """A listing, or None when it is not one or names a file outside its folder."""
    if not isinstance(data, list):
        return None
    listing = {}
    for item in data:
        if isinstance(item, dict) and item.get("relpath") and item.get("md5"):
            relpath, md5 = item["relpath"], item["md5"]
            if unsafe_reason(relpath) or not isinstance(md5, str) or not FILE_MD5.fullmatch(md5):
                return None  # crafted: its files would link lineage to paths elsewhere
            listing[relpath] = md5
    return listing


def from_worktree(root: Path, path: str, md5: str) -> Listing | None:
    """The listing of the folder ``path`` as it is now, if its ``.dir`` md5 is ``md5``."""
    if unsafe_reason(path):
        return None  # a path from history or the store that leaves the work tree
    folder = root / path
    if not folder.is_dir():
        return None
    files = []
    total = 0
    for current, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in (".git", ".dvc")]
        for name in names:
            file = Path(current) / name
            if not file.is_file():
                continue
            total += file.stat().st_size
            if total > WORKTREE_LIMIT:
                return None
            files.append(file)
    listing = {f.relative_to(folder).as_posix(): _md5(f) for f in files}
    entries = [{"relpath": rel, "md5": m} for rel, m in listing.items()]
    return listing if dir_md5(entries) == md5 else None


def from_git(
    root: Path, commit: str, path: str, md5: str, folders: Iterable[Path]
) -> Listing | None:
    """The listing of the Git-tracked folder ``path`` at ``commit``, if it hashes to ``md5``.

    A folder dependency that holds ``dvc add``ed files (``data/`` beside
    ``data/images.tar.gz.dvc``) is never stored by DVC, but Git has all of
    it: its files' bytes, and the md5 of each DVC-tracked one in its
    ``.dvc`` file. Needs no data, so it works in a fresh clone or CI.
    """
    from dvflow.core import _history
    from dvflow.core._git import _git

    prefix = path.rstrip("/") + "/"
    files = {}
    for item in _git(root, "ls-tree", "-r", "-z", commit, "--", prefix).split("\0"):
        meta, _, name = item.partition("\t")
        parts = meta.split()
        if name and len(parts) == 3 and parts[1] == "blob" and parts[0] != "120000":
            files[name] = parts[2]
    tracked = [name for name in files if name.endswith(".dvc")]
    if not tracked:
        return None  # a code folder: nothing in it has a producer to link to
    blobs = _history.read_blobs(root, files.values())
    listing = {
        name[len(prefix) :]: hashlib.md5(blobs.get(blob, b""), usedforsecurity=False).hexdigest()
        for name, blob in files.items()
    }
    for name in tracked:
        for entry in _history.parse_file(name, blobs.get(files[name], b"")):
            for out, out_md5 in entry.outs:
                if not _add_tracked(listing, out[len(prefix) :], out_md5, folders):
                    return None
    entries = [{"relpath": rel, "md5": m} for rel, m in listing.items()]
    return listing if dir_md5(entries) == md5 else None


def _add_tracked(listing: Listing, rel: str, md5: str, folders: Iterable[Path]) -> bool:
    """Put one DVC-tracked file (or folder, from its cached listing) into ``listing``."""
    if not md5.endswith(".dir"):
        listing[rel] = md5
        return True
    inner = from_cache(folders, md5)
    if inner is None:
        return False
    listing.update({f"{rel}/{name}": m for name, m in inner.items()})
    return True


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
