"""Facts about the code: commit, branch, dirty state and the patch.

Every git call goes through ``_git`` so a failing command becomes one
GitError (the single translation point for git).
"""

from __future__ import annotations

import fnmatch
import posixpath
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ._exceptions import GitError, NoSuchFolderError, NotAGitRepoError


def _git(root: Path, *args: str, ok_codes: Sequence[int] = (0,)) -> str:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=root,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            check=False,
        )
    except FileNotFoundError as exc:
        raise GitError(list(args), "git is not installed or not on PATH") from exc
    if proc.returncode not in ok_codes:
        raise GitError(list(args), proc.stderr)
    return proc.stdout


def find_root(path: Path) -> Path:
    """Return the top of the git work tree holding ``path``."""
    if not path.is_dir():
        raise NoSuchFolderError(path)
    try:
        out = _git(path, "rev-parse", "--show-toplevel")
    except GitError as exc:
        raise NotAGitRepoError(path) from exc
    return Path(out.strip())


def is_git_repo(path: Path) -> bool:
    try:
        find_root(path)
    except (NotAGitRepoError, NoSuchFolderError):
        return False
    return True


@dataclass(frozen=True)
class UntrackedFile:
    """An untracked file under a dependency, as a patch that creates it."""

    path: str
    patch: bytes


@dataclass(frozen=True)
class CodeState:
    """The code a run starts from.

    ``patch`` is the tracked changes (``git diff HEAD``) plus every untracked
    file in ``untracked``; ``for_paths`` narrows it to what one stage reads.
    ``withheld`` are untracked files under the dependencies that no patch
    holds: their names look like secrets.
    """

    commit: str | None
    branch: str | None
    dirty: bool
    patch: bytes
    remote_url: str | None
    diff: bytes = b""  # the tracked changes alone
    changed: bool = False  # tracked files differ from the commit
    untracked: tuple[UntrackedFile, ...] = ()
    withheld: tuple[str, ...] = ()

    def for_paths(self, paths: Iterable[str]) -> CodeState:
        """The same code with only the untracked files at or under ``paths``."""
        wanted = list(paths)
        files = tuple(f for f in self.untracked if _under(f.path, wanted))
        withheld = tuple(p for p in self.withheld if _under(p, wanted))
        return replace(
            self,
            patch=self.diff + b"".join(f.patch for f in files),
            untracked=files,
            withheld=withheld,
            dirty=self.changed or bool(files or withheld) or not self.commit,
        )


def _under(path: str, folders: Sequence[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


# Untracked files never put in a patch: their names say they hold credentials.
_SECRET_FILE_NAMES = (
    ".env*",
    "*secret*",
    "*credential*",
    "*password*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_*",
    ".netrc",
    ".pgpass",
    ".git-credentials",
)


def looks_like_secret_file(path: str) -> bool:
    """Does a folder or the name of ``path`` look like it holds credentials (.env, id_rsa)?"""
    parts = [p.lower() for p in posixpath.normpath(path).split("/")]
    return any(fnmatch.fnmatchcase(p, pattern) for p in parts for pattern in _SECRET_FILE_NAMES)


def untracked_notices(code: CodeState) -> list[str]:
    """What to tell the user about the untracked files of ``code``: attached, left out."""
    notices = []
    if code.untracked:
        notices.append(
            "code.patch holds untracked files, in the runs of the stages that read them: "
            + ", ".join(f.path for f in code.untracked)
        )
    if code.withheld:
        notices.append(
            "left out of code.patch as their names look like secrets: "
            + ", ".join(code.withheld)
            + " (untracked; the runs cannot restore them: commit what is not secret)"
        )
    return notices


def head_commit(root: Path) -> str | None:
    out = _git(root, "rev-parse", "--verify", "-q", "HEAD", ok_codes=(0, 1))
    return out.strip() or None


def head_and_dirty(root: Path) -> tuple[str | None, bool]:
    """HEAD's commit and whether tracked files differ from it (two git calls, no patch)."""
    commit = head_commit(root)
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    return commit, bool(status.strip() or not commit)


def current_branch(root: Path) -> str | None:
    out = _git(root, "symbolic-ref", "-q", "--short", "HEAD", ok_codes=(0, 1))
    return out.strip() or None


def remote_url(root: Path) -> str | None:
    out = _git(root, "config", "--get", "remote.origin.url", ok_codes=(0, 1))
    return out.strip() or None


def untracked(root: Path, paths: Iterable[str]) -> list[str]:
    """The subset of ``paths`` (files or folders) that git sees as untracked."""
    wanted = [p for p in paths if (root / p).exists()]
    if not wanted:
        return []
    out = _git(root, "ls-files", "--others", "--exclude-standard", "-z", "--", *wanted)
    return sorted(p for p in out.split("\0") if p)


def _untracked_patch(root: Path, path: str) -> bytes:
    proc = subprocess.run(
        ["git", "diff", "--no-index", "--binary", "--", "/dev/null", path],
        cwd=root,
        capture_output=True,
        check=False,
    )
    # --no-index exits 1 when the files differ, which they always do here.
    if proc.returncode not in (0, 1):
        raise GitError(["diff", "--no-index", path], proc.stderr.decode(errors="replace"))
    return proc.stdout


def code_state(root: Path, dependencies: Iterable[str] = ()) -> CodeState:
    """Commit, branch, dirty flag and patch of the work tree at ``root``.

    The patch is ``git diff HEAD`` plus the untracked files among
    ``dependencies``: the code a stage reads but that no commit holds yet.
    Untracked files whose names look like secrets (``looks_like_secret_file``)
    are left out and listed in ``withheld``.
    """
    commit = head_commit(root)
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    extra = untracked(root, dependencies)
    withheld = tuple(p for p in extra if looks_like_secret_file(p))
    files = tuple(UntrackedFile(p, _untracked_patch(root, p)) for p in extra if p not in withheld)
    diff = b""
    if commit and status.strip():
        diff = subprocess.run(
            ["git", "diff", "--binary", "HEAD"], cwd=root, capture_output=True, check=True
        ).stdout
    return CodeState(
        commit=commit,
        branch=current_branch(root),
        dirty=bool(status.strip() or extra or not commit),
        patch=diff + b"".join(f.patch for f in files),
        remote_url=remote_url(root),
        diff=diff,
        changed=bool(status.strip()),
        untracked=files,
        withheld=withheld,
    )


def is_ignored(root: Path, path: str) -> bool:
    out = _git(root, "check-ignore", "--", path, ok_codes=(0, 1))
    return bool(out.strip())


def is_tracked(root: Path, path: str) -> bool:
    """Does git track ``path`` (or anything below it)?"""
    return bool(_git(root, "ls-files", "--", path).strip())


def ignore_untracked(root: Path, paths: list[str]) -> list[str]:
    """Add each existing, untracked, not yet ignored path to its folder's .gitignore.

    Returns the paths it ignored.
    """
    done = []
    top = root.resolve()
    for rel in paths:
        path = root / rel
        # An output outside the work tree, or reached through a symlinked
        # folder, is no business of a .gitignore here (git refuses to name it).
        if not _plainly_inside(top, rel) or not path.exists():
            continue
        if is_ignored(root, rel) or is_tracked(root, rel):
            continue
        gitignore = path.parent / ".gitignore"
        existing = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
        line = f"/{path.name}"
        if line not in existing.splitlines():
            sep = "" if not existing or existing.endswith("\n") else "\n"
            gitignore.write_text(f"{existing}{sep}{line}\n", encoding="utf-8")
        done.append(rel)
    return done


def _plainly_inside(top: Path, rel: str) -> bool:
    """Is ``rel`` below ``top`` (resolved) with no symlinked folder on the way?"""
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        return False
    folder = top
    for part in Path(rel).parts[:-1]:
        folder = folder / part
        if folder.is_symlink():
            return False
    return True


def init(root: Path) -> None:
    _git(root, "init", "-q")


def _identity_args(root: Path) -> list[str]:
    """A fallback author for commits dvflow makes, only where git has none."""
    if _git(root, "config", "user.email", ok_codes=(0, 1)).strip():
        return []
    return ["-c", "user.name=dvflow", "-c", "user.email=dvflow@localhost"]


def commit_all(root: Path, message: str) -> str:
    """Stage everything git does not ignore and commit it; returns the commit."""
    _git(root, "add", "-A")
    _git(root, *_identity_args(root), "commit", "-q", "--no-verify", "-m", message)
    return head_commit(root) or ""


def is_commit(root: Path, sha: str) -> bool:
    out = _git(root, "cat-file", "-t", sha, ok_codes=(0, 1, 128))
    return out.strip() == "commit"


def rev_parse(root: Path, rev: str) -> str:
    """The full commit id ``rev`` names; GitError with a hint when it names none."""
    out = _git(root, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}", ok_codes=(0, 1))
    if not out.strip():
        raise GitError(["rev-parse", rev], f"no commit named {rev!r} in this repository")
    return out.strip()


def files_named(root: Path, commit: str, name: str) -> list[str]:
    """Paths of every file called ``name`` in the tree of ``commit``."""
    out = _git(root, "ls-tree", "-r", "--name-only", "-z", commit)
    return sorted(p for p in out.split("\0") if p == name or p.endswith(f"/{name}"))


def show_file(root: Path, commit: str, path: str) -> str:
    return _git(root, "show", f"{commit}:{path}")
