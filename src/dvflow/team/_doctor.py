"""``doctor``: is this setup sound? One line per check, each with its fix.

    tools       versions of git, DVC and MLflow
    remote      the default DVC remote, reachable with the credentials that resolve
    versioning  object versioning on an S3 remote's bucket (warn when off)
    secrets     credentials committed in .dvc/config (fail: they are in Git history)
    local       a stale --local remote section (DESIGN trap 7: every DVC command fails)
    tracking    the tracking store reachable, and which kind it is
    spool       runs recorded to the local spool while the server was down (warn)
    openlineage where 'dvflow run' sends OpenLineage events, reachable; events waiting (warn)
    gitignore   the MLflow store and dvflow's folder ignored by Git
    keys        private keys tracked by Git, about to be (untracked, not ignored), or
                readable by others (dvflow keygen's folder, the work tree): warn

Exit 0 when nothing fails (warnings allowed), 1 when a check fails.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from dvflow.core import _git
from dvflow.core._config import load_config
from dvflow.core._exceptions import DvflowError, ProjectError, RemoteError
from dvflow.core._redact import Redactor, redactor_for
from dvflow.proof._checks import Check

_USERINFO = re.compile(r"://[^/@\s]+:[^/@\s]+@")
_SECTION = re.compile(r"""^\s*\[\s*['"]?remote\s+"(?P<name>[^"]+)"['"]?\s*\]\s*$""")
_CREDENTIAL_KEYS = re.compile(
    r"^(access_key_id|secret_access_key|session_token|password|ask_password_no|"
    r"account_key|connection_string|sas_token|client_secret|key_passphrase|"
    r"gdrive_client_secret|token)$",
    re.IGNORECASE,
)


def doctor(path: str | os.PathLike[str] = ".", *, tracking_uri: str | None = None) -> list[Check]:
    """Run every check on the project at ``path``."""
    root = _project_root(Path(path))
    redact = redactor_for(root).redact
    shared = _sections(root / ".dvc" / "config")
    local = _sections(root / ".dvc" / "config.local")
    checks = [_tools(), _secrets(shared), _stale_local(shared, local)]
    if checks[-1].ok:
        checks += _remote(root, redact)
    else:
        checks.append(Check("remote", "fail", "not checked: DVC cannot read its config"))
    checks.append(_tracking(root, tracking_uri))
    checks.append(_spool(root))
    checks.append(_openlineage(root, tracking_uri))
    checks.append(_gitignore(root))
    checks.append(_keys(root))
    return checks


def _project_root(path: Path) -> Path:
    """The DVC project at ``path`` (a 'dvc init --subdir' one has its own .dvc/config)."""
    from dvflow.core._roots import dvc_root

    try:
        return dvc_root(path)
    except ProjectError:  # a git repository without DVC: the remote check says so
        return _git.find_root(path.resolve())


def _sections(path: Path) -> dict[str, dict[str, str]]:
    """``{remote name: {key: value}}`` of a DVC config file, read without DVC."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    if not path.is_file():
        return sections
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _SECTION.match(line)
        if match:
            current = sections.setdefault(match["name"], {})
        elif line.strip().startswith("["):
            current = None
        elif current is not None and "=" in line:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
    return sections


def _tools() -> Check:
    from importlib import metadata

    git = subprocess.run(["git", "--version"], capture_output=True, text=True, check=False)
    versions = [
        git.stdout.strip().replace("git version ", "git ") or "git: not found",
        f"dvc {metadata.version('dvc')}",
        f"mlflow {metadata.version('mlflow')}",
    ]
    return Check("tools", "pass", ", ".join(versions))


def _secrets(shared: dict[str, dict[str, str]]) -> Check:
    found = [
        f"remote {name}: {key}"
        for name, keys in shared.items()
        for key, value in keys.items()
        if value and (_CREDENTIAL_KEYS.match(key) or (key == "url" and _USERINFO.search(value)))
    ]
    if found:
        return Check(
            "secrets",
            "fail",
            f"credentials committed in .dvc/config: {', '.join(found)}",
            "Move them to .dvc/config.local ('dvc remote modify --local NAME KEY VALUE'), "
            "remove them from .dvc/config, and rotate them: they are in Git history.",
        )
    return Check("secrets", "pass", "no credentials in .dvc/config")


def _stale_local(shared: dict[str, dict[str, str]], local: dict[str, dict[str, str]]) -> Check:
    stale = [name for name, keys in local.items() if name not in shared and "url" not in keys]
    if stale:
        names = ", ".join(stale)
        return Check(
            "local",
            "fail",
            f".dvc/config.local has settings for remote(s) that no longer exist: {names}",
            "Every DVC command fails until they go: "
            + "; ".join(f"dvc config --local --unset remote.{n}" for n in stale)
            + " (or delete those sections from .dvc/config.local).",
        )
    return Check("local", "pass", "no stale --local remote sections")


def _remote(root: Path, redact: Any) -> list[Check]:
    from dvflow.stores._dvc import DvcProject

    try:
        project = DvcProject(root)
    except DvflowError as exc:
        return [Check("remote", "fail", redact(exc.message), exc.hint)]
    try:
        url = project.remote_url()
        if not url:
            return [
                Check(
                    "remote",
                    "warn",
                    "no default DVC remote: data exists on this machine only",
                    "Add one: 'dvc remote add -d storage s3://bucket/path' "
                    "(or 'dvflow init --remote URL').",
                )
            ]
        try:
            state = project.remote_state()
        except RemoteError as exc:
            detail = f"{redact(url)} {exc.problem}: {redact(exc.detail)}"
            return [Check("remote", "fail", detail, exc.hint)]
        except DvflowError as exc:
            return [Check("remote", "fail", f"{redact(url)}: {redact(exc.message)}", exc.hint)]
        checks = [_remote_check(redact(url), state)]
        if url.startswith("s3://"):
            checks.append(_versioning(project, redact(url), redact))
        return checks
    finally:
        project.close()


def _remote_check(url: str, state: str) -> Check:
    if state == "exists":
        return Check("remote", "pass", f"{url} is reachable")
    if state == "empty":
        return Check("remote", "pass", f"{url} is reachable (empty until the first 'dvc push')")
    if url.startswith(("http://", "https://")):  # the server answered: nothing there yet
        return Check(
            "remote",
            "warn",
            f"{url} answers but has nothing there yet",
            "The first 'dvc push' creates it, if the server accepts uploads.",
        )
    if "://" in url:  # a bucket or container: DVC does not create it
        return Check(
            "remote",
            "fail",
            f"{url}: its bucket or container does not exist",
            "Create it first (DVC does not), or fix the remote's URL: "
            "'dvc remote modify storage url URL'.",
        )
    return Check("remote", "warn", f"{url} does not exist yet", "The first 'dvc push' creates it.")


def _versioning(project: Any, url: str, redact: Any) -> Check:
    try:
        status = project.bucket_versioning()
    except DvflowError as exc:
        return Check("versioning", "warn", f"cannot read the bucket's versioning: {exc.message}")
    if status == "Enabled":
        return Check("versioning", "pass", f"object versioning is on for {url}")
    bucket = url[len("s3://") :].split("/", maxsplit=1)[0]
    endpoint = project.remote_config().get("endpointurl")
    # An S3-compatible store (MinIO, Ceph...) needs its endpoint named, or
    # the command goes to AWS and fails there.
    where = f" --endpoint-url {redact(endpoint)}" if endpoint else ""
    return Check(
        "versioning",
        "warn",
        f"object versioning is {status.lower() or 'off'} for {url}: an overwritten or deleted "
        "object cannot be recovered",
        f"aws s3api put-bucket-versioning --bucket {bucket}{where} "
        "--versioning-configuration Status=Enabled",
    )


def _tracking(root: Path, tracking_uri: str | None) -> Check:
    from dvflow.stores._tracking import check_reachable, display_uri

    try:
        config = load_config(root, tracking_uri=tracking_uri)
        uri = config.tracking_uri
        check_reachable(uri)
    except DvflowError as exc:
        return Check("tracking", "fail", Redactor().redact(exc.message), exc.hint)
    kind = uri.split(":", 1)[0]
    if kind == "sqlite":
        path = Path(uri[len("sqlite:///") :])
        what = "a SQLite store" + ("" if path.exists() else " (created by the first 'dvflow run')")
    elif kind in ("http", "https"):
        what = "an MLflow tracking server"
    elif kind == "file":
        what = "a file store (deprecated by MLflow: prefer sqlite:///mlflow.db)"
    else:
        what = f"a {kind} database"
    return Check("tracking", "pass", f"{display_uri(uri)}: {what}")


def _spool(root: Path) -> Check:
    from dvflow.stores._spool import SPOOL_DIR, waiting_runs

    waiting = waiting_runs(root)
    if waiting == 0:
        return Check("spool", "pass", "no runs waiting in the local spool")
    return Check(
        "spool",
        "warn",
        f"{'some' if waiting is None else waiting} run(s) recorded to the local spool "
        f"({SPOOL_DIR}/) while the tracking server did not answer are not on the server yet",
        "Upload them with 'dvflow sync' once the server answers.",
    )


def _openlineage(root: Path, tracking_uri: str | None) -> Check:
    from dvflow.export._emit import OUTBOX, consumer_problem, find_endpoint, outbox_lines

    try:
        endpoint = find_endpoint(root, load_config(root, tracking_uri=tracking_uri))
    except DvflowError as exc:
        return Check("openlineage", "fail", Redactor().redact(exc.message), exc.hint)
    waiting = len(outbox_lines(root))
    if endpoint is None:
        if waiting:
            return Check(
                "openlineage",
                "warn",
                f"{waiting} event(s) wait in {OUTBOX.as_posix()}, but no consumer is configured",
                "Set 'openlineage: {url: ...}' in dvflow.yaml or OPENLINEAGE_URL, "
                "then run 'dvflow sync'.",
            )
        return Check("openlineage", "pass", "no consumer configured: events are not sent live")
    where = f"{endpoint.shown} (from {endpoint.source})"
    if problem := consumer_problem(endpoint):
        return Check(
            "openlineage",
            "fail",
            f"{where}: {problem}",
            "Runs still succeed; their events wait in the outbox until 'dvflow sync'.",
        )
    state = "answers" if endpoint.transport.get("type") in ("http", "async_http") else "is set"
    if waiting:
        return Check(
            "openlineage",
            "warn",
            f"{where} {state}; {waiting} event(s) wait in {OUTBOX.as_posix()}",
            "Send them with 'dvflow sync'.",
        )
    return Check("openlineage", "pass", f"{where} {state}")


def _gitignore(root: Path) -> Check:
    wanted = ["mlflow.db", "mlartifacts/x", ".dvflow/x"]
    missing = [p for p in wanted if not _git.is_ignored(root, p)]
    if missing:
        entries = " ".join("/" + p.split("/")[0] + ("/" if "/" in p else "") for p in missing)
        return Check(
            "gitignore",
            "fail",
            f"git would commit: {entries}",
            f"Add to .gitignore: {entries} (or run 'dvflow init', which adds them).",
        )
    return Check("gitignore", "pass", ".gitignore covers mlflow.db, mlartifacts/ and .dvflow/")


# Names a private key file usually has; tracked files are searched by content.
_KEY_NAMES = re.compile(r"(\.(key|pem|priv)|^id_(rsa|ecdsa|ed25519))$")


def _keys(root: Path) -> Check:
    """Signing keys belong to their owner alone: never in Git, never readable by others."""
    from dvflow.export._dsse import default_key_dir, is_private_key_file

    top = _git.find_root(root)
    pattern = "-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"
    found = _git._git(top, "grep", "-lzI", "-E", "-e", pattern, ok_codes=(0, 1))
    tracked = [rel for rel in found.split("\0") if rel]
    others = _git._git(top, "ls-files", "-z", "--others", "--exclude-standard").split("\0")
    loose = [
        rel
        for rel in others
        if rel and _KEY_NAMES.search(Path(rel).name) and is_private_key_file(top / rel)
    ]
    folder = default_key_dir()
    mine = sorted(folder.glob("*")) if folder.is_dir() else []
    candidates = [p for p in mine if is_private_key_file(p)] + [top / r for r in tracked + loose]
    open_to_others = sorted(
        {str(p) for p in candidates if p.is_file() and p.stat().st_mode & 0o077}
    )
    problems, fixes = [], []
    if tracked:
        problems.append(f"private key(s) tracked by Git: {', '.join(sorted(tracked))}")
        fixes.append(
            "'git rm --cached' them, ignore them, and make new keys ('dvflow keygen --force'): "
            "the old ones stay in Git's history"
        )
    if loose:
        problems.append(f"'git add -A' would commit private key(s): {', '.join(sorted(loose))}")
        fixes.append("move them out of the work tree (or ignore them)")
    if open_to_others:
        problems.append(f"private key(s) readable by others: {', '.join(open_to_others)}")
        fixes.append("'chmod 600' them")
    if problems:
        fix = "; ".join(fixes)
        return Check("keys", "warn", "; ".join(problems), fix[0].upper() + fix[1:] + ".")
    where = f" ({len(mine)} file(s) in {folder})" if mine else ""
    return Check("keys", "pass", f"no private key in Git or readable by others{where}")
