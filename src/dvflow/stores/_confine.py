"""What ``checkout`` and ``verify --rebuild`` may take from a record before writing.

A record is written by whoever can write to the tracking store, a ``.dir``
listing by whoever can write to the DVC remote. Neither may say where these
commands write: every path taken from a record, a listing or a patch is
refused unless it stays inside the folder it is joined to (relative, no
``..``, no symbolic link on the way), every md5 unless it is one, every
patch unless its sha256 is the one its record names. The paths written are
those the recorded commit's own ``dvc.yaml`` declares for the stage.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from dvflow.core._exceptions import UnsafeRecordError
from dvflow.core._record import PATCH_ARTIFACT, sha256_hex
from dvflow.core._scratch import alive

if TYPE_CHECKING:
    from dvflow.core._dvcfiles import Pointer
    from dvflow.core._record import ProvenanceRecord

    from ._tracking import Tracker

MD5 = re.compile(r"[0-9a-f]{32}(\.dir)?")
FILE_MD5 = re.compile(r"[0-9a-f]{32}")


def unsafe_reason(path: object) -> str | None:
    """Why ``path`` cannot be joined to a folder, or None when it can."""
    if not isinstance(path, str) or not path:
        return "it is empty"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid text"
    problems = (
        ("\0" in path, "it holds a NUL character"),
        ("://" in path, "it is a URL"),
        (
            path.startswith(("/", "\\")) or bool(re.match(r"[A-Za-z]:[/\\]", path)),
            "it is an absolute path",
        ),
        (".." in re.split(r"[/\\]", path), "it leaves the folder through '..'"),
    )
    return next((reason for found, reason in problems if found), None)


def confined(folder: Path, path: str, run_id: str, what: str) -> Path:
    """``folder / path``, refused unless it stays inside ``folder``.

    ``what`` names the path in the error (``input``, ``output``, a listing's file).
    """
    reason = unsafe_reason(path)
    if reason is not None:
        raise UnsafeRecordError(run_id, f"{what} {path!r}: {reason}")
    base = folder.resolve()
    current = base
    try:
        for part in PurePosixPath(path).parts:
            current = current / part
            if current.is_symlink():
                inner = current.relative_to(base).as_posix()
                raise UnsafeRecordError(run_id, f"{what} {path!r}: {inner} is a symbolic link")
        inside = current.resolve().is_relative_to(base)  # belt and braces
    except OSError as exc:  # a name too long for the file system, say
        raise UnsafeRecordError(run_id, f"{what} {path[:200]!r}: {exc.strerror}") from None
    if not inside:
        raise UnsafeRecordError(run_id, f"{what} {path!r}: it leaves the folder")
    return current


def checked_md5(md5: object, run_id: str, what: str, *, directory: bool = True) -> str:
    """``md5`` when it is an md5 (``.dir`` ones only with ``directory``), else refused."""
    pattern = MD5 if directory else FILE_MD5
    if not isinstance(md5, str) or not pattern.fullmatch(md5):
        raise UnsafeRecordError(run_id, f"{what} has md5 {str(md5)[:80]!r}, which is not an md5")
    return md5


def checked_listing(entries: object, run_id: str, what: str) -> list[tuple[str, str]]:
    """The ``(relpath, md5)`` pairs of a ``.dir`` listing, every one of them safe, or refused."""
    if not isinstance(entries, list):
        raise UnsafeRecordError(run_id, f"the .dir listing of {what} is not a list")
    pairs = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise UnsafeRecordError(run_id, f"the .dir listing of {what} holds a non-entry")
        relpath = entry.get("relpath")
        reason = unsafe_reason(relpath)
        if reason is not None:
            name = str(relpath)[:200]
            raise UnsafeRecordError(
                run_id, f"the .dir listing of {what} names the file {name!r}: {reason}"
            )
        assert isinstance(relpath, str)
        md5 = checked_md5(entry.get("md5"), run_id, f"{relpath} in {what}", directory=False)
        pairs.append((relpath, md5))
    return pairs


def checked_commit(commit: object, run_id: str) -> str:
    """The record's commit when it is a commit id (never an option or a ref name to git)."""
    if not isinstance(commit, str) or not re.fullmatch(r"[0-9a-f]{7,64}", commit):
        raise UnsafeRecordError(run_id, f"its commit {str(commit)[:80]!r} is not a commit id")
    return commit


def check_record_paths(record: ProvenanceRecord, tree: Path) -> None:
    """The stage's DVC file and the DVC project folder a record names stay in ``tree``."""
    run_id = str(record.mlflow.get("run_id", "?"))
    sub = record.code.get("dvc_root")
    if sub:
        confined(tree, str(sub), run_id, "DVC project folder")
    stage = record.stage["name"] if record.stage else ""
    dvcfile = str(stage).rpartition(":")[0]
    if dvcfile:
        confined(tree, dvcfile, run_id, "the stage's DVC file")


def check_declared(
    tree: Path,
    run_id: str,
    *,
    stage: str,
    commit: str,
    pointers: Iterable[Pointer],
    declared: Iterable[str],
) -> None:
    """Every path about to be written stays in ``tree`` and is one the commit's
    ``dvc.yaml`` declares for ``stage``."""
    pointers = list(pointers)
    for pointer in pointers:
        confined(tree, pointer.path, run_id, "the data path")
    known = set(declared)
    strangers = [p for p in pointers if p.path not in known]
    if strangers:
        named = ", ".join(repr(p.path) for p in strangers)
        listed = ", ".join(sorted(known)) or "nothing"
        raise UnsafeRecordError(
            run_id,
            f"it names {named} as data of stage {stage!r}, but commit {commit[:12]}'s "
            f"dvc.yaml declares {listed} for that stage",
        )


def recorded_patch(
    tracker: Tracker, record: ProvenanceRecord, run_id: str
) -> tuple[bytes | None, str | None]:
    """The patch to apply, refused unless its sha256 is the one the record names.

    Returns the patch (None: none to apply) and a notice for the user.
    """
    code = record.code
    if not code.get("dirty"):
        return None, None
    expected = code.get("patch_sha256")
    if not expected:
        return None, "the record says the work tree was dirty but names no patch: none applied"
    patch = tracker.read_artifact(run_id, PATCH_ARTIFACT)
    actual = sha256_hex(patch)
    if actual != expected:
        raise UnsafeRecordError(
            run_id, f"its patch {PATCH_ARTIFACT} has sha256 {actual}, the record says {expected}"
        )
    return patch, None


def patch_paths(tree: Path, patch: bytes, run_id: str) -> list[str]:
    """The files a patch changes (git's own reading of it), each refused unless inside ``tree``."""
    proc = subprocess.run(
        ["git", "apply", "--numstat", "-z", "-"],
        cwd=tree,
        input=patch,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        return []  # not a patch git reads: applying it fails with git's message
    # 'added<TAB>deleted<TAB>path<NUL>', or for a rename '...<TAB><NUL>from<NUL>to<NUL>'.
    fields = proc.stdout.decode("utf-8", errors="replace").split("\0")
    paths = []
    pending = 0
    for field in fields:
        if pending:
            paths.append(field)
            pending -= 1
            continue
        parts = field.split("\t", 2)
        if len(parts) != 3:
            continue
        if parts[2]:
            paths.append(parts[2])
        else:
            pending = 2
    for path in paths:
        confined(tree, path, run_id, "a file of its patch")
    return paths


def patch_notice(patch: bytes, paths: list[str]) -> str:
    """What the user is told before a stored patch is applied."""
    shown = ", ".join(paths[:8]) + (f" and {len(paths) - 8} more" if len(paths) > 8 else "")
    return (
        f"applying the recorded patch: sha256 {sha256_hex(patch)}, {len(patch)} bytes, "
        f"changing {shown or 'no file'} (code from the tracking store, as the record names it)"
    )


# A worktree's DVC settings: the project's, without a single credential.
_SAFE_REMOTE_KEYS = frozenset(
    {"url", "endpointurl", "region", "profile", "version_aware", "worktree", "projectname"}
)
_PASSWORD = re.compile(r"(?P<keep>://[^/@:\s]*):[^/@\s]*@")


def worktree_config(local: Path, cache: Path) -> str:
    """``.dvc/config.local`` for a worktree: the project's core, cache and remote URLs.

    Credentials are not copied (nothing but the keys named above, a URL's
    password dropped), so a worktree left behind holds none; fetching goes
    through the project itself, where they are.
    """
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    try:
        parser.read(local, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        parser = configparser.ConfigParser(interpolation=None)
    kept: dict[str, dict[str, str]] = {}
    for section in parser.sections():
        name = section.strip().strip("'\"").strip()
        values: Mapping[str, str] = parser[section]
        if name == "core":
            kept[section] = dict(values)
        elif name == "cache":
            kept[section] = {k: v for k, v in values.items() if k != "dir"}
        elif name.startswith("remote ") and values.get("url"):
            remote = {k: v for k, v in values.items() if k in _SAFE_REMOTE_KEYS}
            url = _PASSWORD.sub(r"\g<keep>@", remote["url"].strip())
            if "://" not in url and not os.path.isabs(url.strip("'\"")):
                url = str((local.parent / url.strip("'\"")).resolve())  # relative to .dvc/
            remote["url"] = url
            kept[section] = remote
    cache_section = next((s for s in kept if s.strip().strip("'\"") == "cache"), "cache")
    kept.setdefault(cache_section, {})["dir"] = str(cache)
    lines = []
    for section, values in kept.items():
        lines.append(f"[{section}]")
        lines += [f"    {key} = {value}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


# verify --rebuild's temporary folders: one per rebuild, with who made it.
HOLDER_PREFIX = "dvflow-verify-"
OWNER_FILE = "dvflow-owner"


def new_holder(root: Path) -> Path:
    """A temporary folder for one rebuild's worktree, marked with this process and project."""
    holder = Path(tempfile.mkdtemp(prefix=HOLDER_PREFIX))
    (holder / OWNER_FILE).write_text(f"{os.getpid()}\n{root.resolve()}\n", encoding="utf-8")
    return holder


def clean_leftovers(root: Path) -> list[Path]:
    """Remove the worktrees a killed ``verify --rebuild`` of this project left behind.

    Only folders a rebuild made (its owner file says so) for this project,
    whose process is gone. Returns them.
    """
    removed = []
    for holder in Path(tempfile.gettempdir()).glob(f"{HOLDER_PREFIX}*"):
        try:
            pid_text, owner = (holder / OWNER_FILE).read_text(encoding="utf-8").split("\n")[:2]
            pid = int(pid_text)
        except (OSError, ValueError):
            continue
        if owner != str(root.resolve()) or alive(pid) or holder.is_symlink():
            continue
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(holder / "tree")],
            cwd=root,
            capture_output=True,
            check=False,
        )
        shutil.rmtree(holder, ignore_errors=True)
        removed.append(holder)
    if removed:
        subprocess.run(["git", "worktree", "prune"], cwd=root, capture_output=True, check=False)
    return removed
