"""Facts from Git history: every ``dvc.lock`` stage entry and ``.dvc`` file ever committed.

This is how lineage works in a repository that never ran dvflow: a stage
entry says which data versions (md5s) a command turned into which others,
and a ``.dvc`` file says where a root came from (``dvc add`` or a
``dvc import`` with its ``rev_lock``). One ``git log`` and one
``git cat-file --batch`` read all of it (after a ``--batch-check`` of the
sizes: a file larger than the YAML loader reads is never read); nothing here
imports DVC or MLflow.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._dvcfiles import params_from_lock, pointer_from_entry
from ._exceptions import GitError, InvalidFileError, UnsafeFileError
from ._git import _git
from ._yaml import MAX_BYTES, load_yaml_text, too_large

_PATHSPECS = (":(glob)**/dvc.lock", ":(glob)**/*.dvc")
_ZERO = "0" * 40


@dataclass(frozen=True)
class Entry:
    """One stage of a committed ``dvc.lock``, or one committed ``.dvc`` file.

    ``kind`` is ``stage``, ``add`` or ``import``; ``deps`` and ``outs`` are
    ``(path, md5)`` pairs with paths from the repository root.
    """

    kind: str
    file: str
    name: str
    cmd: str = ""
    deps: tuple[tuple[str, str], ...] = ()
    outs: tuple[tuple[str, str], ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    source: Mapping[str, str] | None = None

    @property
    def stage_key(self) -> str:
        """The stage's name as dvflow tags runs: ``name``, or ``dir/dvc.yaml:name``."""
        folder = posixpath.dirname(self.file)
        return self.name if not folder else f"{folder}/dvc.yaml:{self.name}"

    @property
    def digest(self) -> str:
        data = {
            "kind": self.kind,
            "file": self.file,
            "name": self.name,
            "cmd": self.cmd,
            "deps": self.deps,
            "outs": self.outs,
            "params": dict(self.params),
            "source": dict(self.source or {}),
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Change:
    """At ``commit``, the file ``path`` went from ``old`` to ``blob`` (None: absent)."""

    commit: str
    path: str
    blob: str | None
    old: str | None = None


@dataclass(frozen=True)
class Commit:
    sha: str
    parents: tuple[str, ...]
    time: int


def refs(root: Path) -> dict[str, str]:
    """Every branch, remote-tracking branch and tag, by full ref name, with its commit.

    A fresh clone or a CI checkout has most branches only as
    ``refs/remotes/origin/*``; their symbolic ``origin/HEAD`` only repeats one
    of them and is left out.
    """
    out = _git(
        root,
        "for-each-ref",
        "--format=%(refname)%00%(objecttype)%00%(objectname)%00%(*objectname)%00%(symref)",
        "refs/heads",
        "refs/remotes",
        "refs/tags",
    )
    found: dict[str, str] = {}
    for line in out.splitlines():
        name, kind, obj, peeled, symref = line.split("\0")
        sha = peeled if kind == "tag" else obj
        if sha and not symref and kind in ("commit", "tag"):
            found[name] = sha
    return found


def reachable(root: Path, tip: str) -> list[str]:
    return _git(root, "rev-list", tip).split()


def existing(root: Path, shas: Iterable[str]) -> set[str]:
    """The subset of ``shas`` that are commits in this repository."""
    wanted = list(dict.fromkeys(shas))
    if not wanted:
        return set()
    out = _run_batch(root, ["cat-file", "--batch-check"], "\n".join(wanted) + "\n")
    found = set()
    for line in out.decode().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] == "commit":
            found.add(parts[0])
    return found


def changes(
    root: Path, tips: Sequence[str], known: Sequence[str] = ()
) -> tuple[list[Commit], list[Change]]:
    """Commits reachable from ``tips`` but not ``known`` that touched a DVC file."""
    if not tips:
        return [], []
    args = [
        "log",
        *tips,
        *(f"^{sha}" for sha in known),
        "--raw",
        "-z",
        "--no-abbrev",
        "--no-renames",
        "--diff-merges=first-parent",
        "--format=%x01%H%x02%P%x02%ct",
        "--",
        *_PATHSPECS,
    ]
    return _parse_log(_git(root, *args))


def _parse_log(out: str) -> tuple[list[Commit], list[Change]]:
    commits: list[Commit] = []
    found: list[Change] = []
    for chunk in out.split("\x01")[1:]:
        header, _, body = chunk.partition("\0")
        sha, parents, time = header.split("\x02")
        commits.append(Commit(sha, tuple(parents.split()), int(time or 0)))
        fields = body.lstrip("\n").split("\0")
        for meta, path in zip(fields[::2], fields[1::2], strict=False):
            if not meta.startswith(":"):
                continue
            parts = meta[1:].split()
            blob = parts[3] if len(parts) > 3 and parts[3] != _ZERO else None
            old = parts[2] if len(parts) > 3 and parts[2] != _ZERO else None
            found.append(Change(sha, path, blob, old))
    return commits, found


class Oversized(bytes):
    """A blob larger than dvflow reads as YAML: no content, only its ``size``.

    Git stores a 10 GB file of repeated lines in a few MB; reading it back
    would fill the memory before the YAML loader could refuse it.
    """

    size: int

    def __new__(cls, size: int) -> Oversized:
        blob = super().__new__(cls, b"")
        blob.size = size
        return blob


def read_blobs(
    root: Path, blobs: Iterable[str], *, max_size: int | None = MAX_BYTES
) -> dict[str, bytes]:
    """The contents of many blobs through one ``git cat-file --batch``.

    A blob larger than ``max_size`` (None: no limit) is not read: it is an
    ``Oversized`` (empty, with its size), which ``parse_file`` skips.
    """
    wanted = list(dict.fromkeys(blobs))
    if not wanted:
        return {}
    contents: dict[str, bytes] = dict(_oversized(root, wanted, max_size))
    wanted = [b for b in wanted if b not in contents]
    out = _run_batch(root, ["cat-file", "--batch"], "\n".join(wanted) + "\n") if wanted else b""
    pos = 0
    while pos < len(out):
        end = out.index(b"\n", pos)
        header = out[pos:end].decode().split()
        pos = end + 1
        if len(header) < 3 or header[1] == "missing":
            continue
        size = int(header[2])
        contents[header[0]] = out[pos : pos + size]
        pos += size + 1
    return contents


def read_named(root: Path, names: Iterable[str]) -> dict[str, bytes]:
    """``{name: contents}`` of objects named like ``<commit>:<path>`` (absent ones left out).

    ``git cat-file --batch`` answers in the order asked, which is how each
    answer finds its name. One larger than the YAML loader reads is an
    ``Oversized``.
    """
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    contents: dict[str, bytes] = dict(_oversized(root, wanted, MAX_BYTES))
    wanted = [n for n in wanted if n not in contents]
    out = _run_batch(root, ["cat-file", "--batch"], "\n".join(wanted) + "\n") if wanted else b""
    pos = 0
    for name in wanted:
        end = out.index(b"\n", pos)
        header = out[pos:end].decode().split()
        pos = end + 1
        if len(header) < 3 or header[-1] in ("missing", "ambiguous"):
            continue
        size = int(header[2])
        if header[1] == "blob":
            contents[name] = out[pos : pos + size]
        pos += size + 1
    return contents


def _oversized(
    root: Path, names: Sequence[str], max_size: int | None
) -> Iterator[tuple[str, bytes]]:
    """``(name, Oversized)`` of each blob of ``names`` larger than ``max_size``, sizes only."""
    if max_size is None:
        return
    out = _run_batch(root, ["cat-file", "--batch-check"], "\n".join(names) + "\n")
    for name, line in zip(names, out.decode().splitlines(), strict=False):
        parts = line.split()
        if len(parts) == 3 and parts[1] == "blob" and int(parts[2]) > max_size:
            yield name, Oversized(int(parts[2]))


def _run_batch(root: Path, args: list[str], stdin: str) -> bytes:
    proc = subprocess.run(
        ["git", *args], cwd=root, input=stdin.encode(), capture_output=True, check=False
    )
    if proc.returncode != 0:
        raise GitError(args, proc.stderr.decode(errors="replace"))
    return proc.stdout


def tree_files(root: Path, rev: str) -> dict[str, str]:
    """``{path: blob}`` of every ``dvc.lock`` and ``.dvc`` file in ``rev``'s tree."""
    out = _git(root, "ls-tree", "-r", "-z", rev)
    files: dict[str, str] = {}
    for item in out.split("\0"):
        meta, _, path = item.partition("\t")
        if path and (posixpath.basename(path) == "dvc.lock" or path.endswith(".dvc")):
            files[path] = meta.split()[2]
    return files


# -- parsing committed files ----------------------------------------------------


def parse_file(
    path: str,
    data: bytes,
    pipeline: bytes | None = None,
    *,
    commit: str = "",
    skipped: list[str] | None = None,
) -> list[Entry]:
    """The entries of one committed file; a file that does not parse gives none.

    History holds whatever was committed, broken YAML included: one bad
    commit must not stop lineage for all the others. ``pipeline`` is the
    ``dvc.yaml`` beside a ``dvc.lock`` (same commit): ``dvc.lock`` writes a
    ``wdir`` stage's paths from its ``wdir`` without saying which it is.
    A file the YAML loader refuses (an alias bomb, too large, too deep) is
    skipped too; with ``skipped``, a notice naming it and ``commit`` is added.
    """
    doc = _load(data, path, commit, skipped)
    if not isinstance(doc, dict):
        return []
    if posixpath.basename(path) == "dvc.lock":
        wdirs = stage_wdirs(pipeline, pipeline_path(path), commit=commit, skipped=skipped)
        return list(_stage_entries(path, doc, wdirs))
    entry = _dvc_file_entry(path, doc)
    return [entry] if entry else []


def _load(data: bytes | None, path: str, commit: str = "", skipped: list[str] | None = None) -> Any:
    label = f"{commit[:8]}:{path}" if commit else path
    try:
        if isinstance(data, Oversized):
            raise too_large(label, data.size)
        if not data:
            return None
        return load_yaml_text(data, label)
    except UnsafeFileError as exc:
        if skipped is not None:
            where = f" at commit {commit[:8]}" if commit else ""
            skipped.append(f"skipped {path}{where}: {exc.problem}")
        return None
    except InvalidFileError:
        return None


def pipeline_path(lock: str) -> str:
    """The ``dvc.yaml`` that goes with a ``dvc.lock``."""
    return posixpath.join(posixpath.dirname(lock), "dvc.yaml")


def stage_wdirs(
    pipeline: bytes | None,
    path: str = "dvc.yaml",
    *,
    commit: str = "",
    skipped: list[str] | None = None,
) -> dict[str, str]:
    """``{stage: wdir}`` of the stages of a ``dvc.yaml`` that set one.

    ``foreach`` stages keep theirs under ``do:``; a templated ``wdir``
    cannot be resolved here and is left out (paths then stay as written).
    """
    doc = _load(pipeline, path, commit, skipped)
    stages = doc.get("stages") if isinstance(doc, dict) else None
    if not isinstance(stages, dict):
        return {}
    found = {}
    for name, stage in stages.items():
        body = stage.get("do") if isinstance(stage, dict) and "do" in stage else stage
        wdir = body.get("wdir") if isinstance(body, dict) else None
        if isinstance(wdir, str) and wdir and "${" not in wdir:
            found[str(name)] = wdir
    return found


def _stage_entries(path: str, doc: Mapping[str, Any], wdirs: Mapping[str, str]) -> Iterator[Entry]:
    stages = doc.get("stages")
    if not isinstance(stages, dict):
        return
    folder = posixpath.dirname(path)
    for name, body in sorted(stages.items()):
        if not isinstance(body, dict):
            continue
        # 'name@item' is one item of a foreach or matrix stage.
        wdir = wdirs.get(str(name)) or wdirs.get(str(name).partition("@")[0]) or "."
        base = posixpath.normpath(posixpath.join(folder, wdir)) if folder else wdir
        base = "" if base == "." else base
        yield Entry(
            kind="stage",
            file=path,
            name=str(name),
            cmd=_cmd(body.get("cmd")),
            deps=_pairs(body.get("deps"), base),
            outs=_pairs(body.get("outs"), base),
            params=params_from_lock(body),
        )


def _dvc_file_entry(path: str, doc: Mapping[str, Any]) -> Entry | None:
    base = posixpath.dirname(path)
    outs = _pairs(doc.get("outs"), base)
    if not outs:
        return None
    source = None
    deps = doc.get("deps")
    if isinstance(deps, list) and deps and isinstance(deps[0], dict):
        repo = deps[0].get("repo")
        if isinstance(repo, dict) and repo.get("url"):
            source = {
                "url": str(repo["url"]),
                "rev_lock": str(repo.get("rev_lock") or ""),
                "rev": str(repo.get("rev") or ""),
                "path": str(deps[0].get("path") or ""),
            }
        elif deps[0].get("path"):
            source = {"url": str(deps[0]["path"]), "rev_lock": "", "rev": "", "path": ""}
    return Entry(
        kind="import" if source else "add",
        file=path,
        name=path,
        cmd=_cmd(doc.get("cmd")),
        outs=outs,
        source=source,
    )


def _cmd(value: Any) -> str:
    if isinstance(value, list):
        return " && ".join(str(v) for v in value)
    return str(value) if value else ""


def _pairs(entries: Any, base: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(entries, list):
        return ()
    pairs = []
    for item in entries:
        if not isinstance(item, dict) or not item.get("path"):
            continue
        pointer = pointer_from_entry(item, wdir=base or ".")
        if pointer.md5:
            pairs.append((pointer.path, pointer.md5))
    return tuple(sorted(pairs))
