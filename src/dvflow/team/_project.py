"""``init_project``: make a folder a dvflow project, idempotently."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from dvflow.core import _git
from dvflow.core._config import CONFIG_FILE, DEFAULT_ARTIFACTS_DIR, DEFAULT_TRACKING_URI, STATE_DIR
from dvflow.core._exceptions import ProjectError
from dvflow.core._roots import nearest_dvc_root
from dvflow.stores._dvc import in_repo, quiet_dvc

REMOTE_NAME = "storage"
GITIGNORE_ENTRIES = ("/mlflow.db", f"/{DEFAULT_ARTIFACTS_DIR}/", f"/{STATE_DIR}/")


@dataclass(frozen=True)
class InitResult:
    root: Path
    done: tuple[str, ...]
    kept: tuple[str, ...]
    remote_url: str | None


def make_folder(root: Path) -> None:
    """Create ``root`` (and parents), or say in one line why it cannot be."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise ProjectError(f"{root} exists and is not a folder") from exc
    except OSError as exc:
        raise ProjectError(
            f"cannot create the folder {root}: {exc.strerror}",
            hint="Choose a folder you can write to.",
        ) from exc


def default_remote_dir(root: Path) -> Path:
    """A per-project local remote outside the work tree, under the user's data dir."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    tag = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    return base / "dvflow" / "remotes" / f"{root.name}-{tag}"


def _ensure_git(root: Path, done: list[str], kept: list[str]) -> bool:
    """Make ``root`` a git repository; True when it is a subfolder of one.

    A subfolder becomes a ``dvc init --subdir`` project (one git repository,
    several DVC projects), unless a DVC project above it already holds it.
    """
    if not _git.is_git_repo(root):
        _git.init(root)
        done.append("git init")
        return False
    top = _git.find_root(root).resolve()
    if top == root:
        kept.append("git repository")
        return False
    outer = nearest_dvc_root(root.parent, top)
    if not (root / ".dvc").is_dir() and outer is not None:
        raise ProjectError(
            f"{root} is inside the DVC project {outer}",
            hint=f"Run 'dvflow init {outer}' for that project, or 'dvc init --subdir' "
            f"in {root} first to make it a DVC project of its own.",
        )
    kept.append(f"git repository {top} (this folder is a DVC project of its own)")
    return True


def _ensure_dvc(root: Path, subdir: bool, done: list[str], kept: list[str]) -> None:
    if (root / ".dvc").is_dir():
        kept.append("DVC project")
        return
    from dvc.repo import Repo

    with in_repo(root), quiet_dvc():
        Repo.init(str(root), subdir=subdir).close()
    done.append("dvc init --subdir" if subdir else "dvc init")


def _ensure_remote(
    root: Path, url: str | None, force: bool, done: list[str], kept: list[str]
) -> str | None:
    from dvc.repo import Repo

    with in_repo(root):
        repo = Repo(str(root))
        try:
            current = repo.config["core"].get("remote")
            if current and not force:
                kept.append(f"DVC remote '{current}' (use --force to replace it)")
                return str(repo.config["remote"].get(current, {}).get("url") or "") or None
            # A URL the user names is shared (.dvc/config); the default local
            # folder only exists on this machine, so it goes to config.local.
            level = "repo" if url else "local"
            target = url or str(default_remote_dir(root))
            if not url:
                Path(target).mkdir(parents=True, exist_ok=True)
            with repo.config.edit(level) as conf:
                conf["remote"][REMOTE_NAME] = {"url": target}
                conf["core"]["remote"] = REMOTE_NAME
            if url:
                # A machine-local default would silently win over the shared one.
                with repo.config.edit("local") as conf:
                    conf["remote"].pop(REMOTE_NAME, None)
                    if conf["core"].get("remote") == REMOTE_NAME:
                        del conf["core"]["remote"]
        finally:
            repo.close()
    done.append(f"DVC remote '{REMOTE_NAME}' -> {target}")
    return target


def _ensure_config(root: Path, force: bool, done: list[str], kept: list[str]) -> None:
    path = root / CONFIG_FILE
    if path.exists() and not force:
        kept.append(CONFIG_FILE)
        return
    path.write_text(
        "# dvflow settings. Overridden by flags, then by DVFLOW_TRACKING_URI,\n"
        "# MLFLOW_TRACKING_URI and DVFLOW_EXPERIMENT in the environment.\n"
        f"tracking_uri: {DEFAULT_TRACKING_URI}\n"
        f"experiment: {root.name}\n",
        encoding="utf-8",
    )
    done.append(f"wrote {CONFIG_FILE}")


def _ensure_gitignore(root: Path, done: list[str]) -> None:
    path = root / ".gitignore"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    missing = [e for e in GITIGNORE_ENTRIES if e not in text.splitlines()]
    if missing:
        sep = "" if not text or text.endswith("\n") else "\n"
        path.write_text(text + sep + "\n".join(missing) + "\n", encoding="utf-8")
        done.append(f".gitignore += {' '.join(missing)}")


def _ensure_workflow(root: Path, force: bool, done: list[str], kept: list[str]) -> None:
    from dvflow.core._dvcfiles import model_artifacts

    from ._ci import WORKFLOW, workflow

    path = root / WORKFLOW
    if path.exists() and not force:
        kept.append(str(WORKFLOW))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(workflow(model_artifacts(root, "dvc.yaml")), encoding="utf-8")
    done.append(f"wrote {WORKFLOW} (check + verify; credentials from repository secrets)")


def init_project(
    path: str | os.PathLike[str] = ".",
    *,
    remote: str | None = None,
    force: bool = False,
    ci: bool = False,
) -> InitResult:
    """Set up git, DVC, a default remote, the MLflow store and dvflow's settings.

    ``ci`` also writes a GitHub Actions workflow that runs ``dvflow check``
    and ``dvflow verify``. An empty ``path`` is refused (ValueError): ``"."``
    names the current folder.
    """
    if not os.fspath(path):
        raise ValueError("init_project: path is empty; pass '.' for the current folder")
    root = Path(path).resolve()
    created = not root.exists()
    make_folder(root)
    done: list[str] = []
    kept: list[str] = []
    try:
        subdir = _ensure_git(root, done, kept)
        if ci and subdir:
            # GitHub reads workflows only from the repository's top folder.
            raise ProjectError(
                f"--ci writes .github/ at the top of the git repository, not in {root.name}/",
                hint="Run 'dvflow init' here without --ci, then add a workflow at the top "
                f"that runs 'dvflow check -C {root.name}'.",
            )
    except ProjectError:
        if created:
            root.rmdir()  # a refusal leaves nothing behind
        raise
    _ensure_dvc(root, subdir, done, kept)
    remote_url = _ensure_remote(root, remote, force, done, kept)
    _ensure_config(root, force, done, kept)
    _ensure_gitignore(root, done)
    if ci:
        _ensure_workflow(root, force, done, kept)
    (root / STATE_DIR).mkdir(exist_ok=True)
    return InitResult(root, tuple(done), tuple(kept), remote_url)
