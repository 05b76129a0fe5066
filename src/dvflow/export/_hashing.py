"""sha256 of DVC-tracked files and directories, checked against their DVC md5 on the way.

An attestation names content by sha256 (in-toto consumers should not accept
md5 alone), but dvflow's records name it by DVC md5. Each file is read once:
both digests are computed from the same chunks (md5 in a second thread, as
hashlib releases the GIL for large buffers), so the sha256 an attestation
states is proven to be that of the bytes the record names.

A directory's sha256 is that of the text ``sha256sum`` prints for its files,
sorted by path: one line ``<sha256>  <relpath>\\n`` per file, so that
``(cd DIR && find . -type f | sed 's|^\\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum)``
gives it too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CHUNK = 4 * 1024 * 1024
# Below this, a second thread costs more than the md5 it computes.
_THREADED = 8 * 1024 * 1024


def file_digests(path: Path, *, md5: bool = True) -> tuple[str | None, str]:
    """(md5, sha256) of the file at ``path``, read once (md5 None when not asked)."""
    sha = hashlib.sha256()
    second = hashlib.md5(usedforsecurity=False) if md5 else None
    with path.open("rb", buffering=0) as handle:
        if second is None or os.fstat(handle.fileno()).st_size < _THREADED:
            for chunk in iter(lambda: handle.read(CHUNK), b""):
                sha.update(chunk)
                if second is not None:
                    second.update(chunk)
        else:
            with ThreadPoolExecutor(1) as pool:
                for chunk in iter(lambda: handle.read(CHUNK), b""):
                    pending = pool.submit(second.update, chunk)
                    sha.update(chunk)
                    pending.result()
    return (second.hexdigest() if second is not None else None), sha.hexdigest()


def bytes_digests(data: bytes) -> tuple[str, str]:
    return hashlib.md5(data, usedforsecurity=False).hexdigest(), hashlib.sha256(data).hexdigest()


def many_file_digests(paths: Iterable[Path], *, md5: bool = True) -> list[tuple[str | None, str]]:
    """``file_digests`` of many files, a few at a time (small files wait on the disk)."""
    work = list(paths)
    if len(work) < 4:
        return [file_digests(p, md5=md5) for p in work]
    with ThreadPoolExecutor(min(8, (os.cpu_count() or 1) * 2)) as pool:
        return list(pool.map(lambda p: file_digests(p, md5=md5), work))


def tree_sha256(files: Mapping[str, str]) -> str:
    """The sha256 of a directory from ``{relpath: sha256}`` (see the module's docstring)."""
    text = "".join(f"{files[rel]}  {rel}\n" for rel in sorted(files))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
