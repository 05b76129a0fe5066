"""``dvflow erase plan|apply``: erase a data version holding personal data, and what it tainted.

``plan`` answers, before anything is deleted: the objects (default remote and
local cache; the data version and every tainted data version made from it,
``.dir`` listings expanded) that go, the objects kept because untainted data
holds the same bytes, the Git commits that still point at them (history is
not rewritten), the MLflow runs and logged models to delete, the model
versions to retrain and the stages to re-run, and what cannot be reached.
``apply`` deletes exactly the plan, confirmed by its sha256, writes tombstones
(md5, request id, time) to ``dvflow.governance.yaml`` and an audit record.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dvflow.core import _git
from dvflow.core._config import load_config
from dvflow.core._exceptions import InvalidArgumentError, ProtectedVersionsError
from dvflow.core._governance import Tombstone, now_utc, read_governance, write_governance
from dvflow.core._redact import redactor_for
from dvflow.core._roots import project_roots
from dvflow.trace._taint import Taint, compute_taint, stage_of

from ._pii import resolve_data, who
from ._plan import PLAN_FORMAT, read_plan, seal
from ._plan import confirm as confirm_plan

PLAN_DIR = Path(".dvflow") / "plans"
AUDIT_DIR = Path(".dvflow") / "audit"


@dataclass(frozen=True)
class AppliedErasure:
    plan_sha256: str
    deleted: tuple[dict[str, Any], ...]
    runs: tuple[str, ...]
    logged_models: tuple[str, ...]
    tombstones: int
    audit: Path


# -- plan ---------------------------------------------------------------------------


def plan_erase(
    target: str,
    request_id: str,
    path: str | os.PathLike[str] = ".",
    *,
    tracking_uri: str | None = None,
    out: str | os.PathLike[str] | None = None,
) -> tuple[dict[str, Any], Path]:
    """The erasure plan of ``target`` (PATH[@REV|@MD5]) for request ``request_id``, and its file."""
    from dvflow.trace._queries import open_index

    if not request_id.strip():
        raise InvalidArgumentError("request id", request_id, "it is empty", "Give --request-id ID.")
    root, project = project_roots(path)
    config = load_config(project, tracking_uri=tracking_uri)
    marks = [(p, m) for p, m in resolve_data(target, path, tracking_uri=tracking_uri)]
    marked = {(m.path, m.md5) for m in read_governance(project).marks}
    index, _, _ = open_index(root, tracking_uri=tracking_uri, project=project)
    try:
        taint = compute_taint(index.db, marks, set(config.governance.sanitisers))
        facts = _Facts(index.db, taint)
        plan_body = facts.body()
    finally:
        index.close()
    plan_body["objects"], plan_body["totals"] = _objects(project, facts.deletable)
    plan_body["workspace"] = _workspace(root, project, facts.pairs)
    plan_body["in_git"] = _in_git(root, facts.pairs)
    plan_body["mlflow"]["logged_models"] = _logged_models(
        config.tracking_uri, [r["run_id"] for r in plan_body["mlflow"]["runs"]]
    )
    remote = _remote(project)
    warnings = _warnings(remote, plan_body, [m for m in marks if m not in marked])
    plan = {
        "kind": "erase",
        "format": PLAN_FORMAT,
        "project": project.relative_to(root).as_posix() or ".",
        "remote": remote,
        "request_id": request_id.strip(),
        "target": target,
        "marks": [{"path": p, "md5": m} for p, m in sorted(marks)],
        **plan_body,
        "warnings": warnings,
    }
    plan = seal(plan)
    file = Path(out) if out else project / PLAN_DIR / f"erase-{plan['plan_sha256'][:12]}.json"
    file.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(plan, sort_keys=True, indent=2) + "\n"
    file.write_text(redactor_for(project).redact(text), encoding="utf-8")
    return plan, file


class _Facts:
    """What the plan says, read from the index for a taint."""

    def __init__(self, db: sqlite3.Connection, taint: Taint) -> None:
        self.db, self.taint = db, taint
        self.pairs = taint.data_versions()
        self.objects = self._objects_of(self.pairs)
        shared = self._held_elsewhere(set(self.pairs), set(self.objects))
        self.kept = {m: shared[m] for m in sorted(shared)}
        self.deletable = sorted(set(self.objects) - set(shared))

    def body(self) -> dict[str, Any]:
        runs = [n for n in self.taint.runs() if n.kind == "run"]
        return {
            "data_versions": [{"path": p, "md5": m} for p, m in self.pairs],
            "kept_shared": [{"md5": m, "also_in": paths} for m, paths in self.kept.items()],
            "commits": self._commits(),
            "refs": self._refs(),
            "mlflow": {
                "runs": [
                    {
                        "run_id": n.id.partition(":")[2],
                        "stage": stage_of(n),
                        "experiment_id": n.attrs.get("experiment_id"),
                    }
                    for n in runs
                ],
                "logged_models": [],
            },
            "retrain": self._retrain(),
            "protected": self._protected(),
        }

    def _objects_of(self, pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
        """md5 -> a path holding it: the versions themselves and the files of ``.dir`` ones.

        A folder version tainted only because a tainted file is in it loses
        that file and its listing, not the other files.
        """
        found = {md5: path for path, md5 in pairs}
        whole = self._wholly_tainted()
        for path, md5 in pairs:
            if md5.endswith(".dir") and f"data:{md5}:{path}" in whole:
                for rel, file_md5 in self.db.execute(
                    "SELECT relpath, md5 FROM dir_files WHERE dir = ?", (md5,)
                ):
                    found.setdefault(str(file_md5), f"{path}/{rel}")
        return found

    def _wholly_tainted(self) -> set[str]:
        """Data nodes marked, or tainted by something else than holding a tainted file."""
        status = self.taint.status
        whole = {n for n, s in status.items() if s == "marked"}
        for edge in self.taint.graph.edges:
            if edge.kind != "contained-in" and status.get(edge.source) in ("marked", "tainted"):
                whole.add(edge.target)
        return whole

    def _held_elsewhere(
        self, tainted: set[tuple[str, str]], md5s: set[str]
    ) -> dict[str, list[str]]:
        """Objects an untainted data version also holds (same bytes): deleting them breaks it."""
        held: dict[str, set[str]] = {}
        listed = sorted(md5s)
        for start in range(0, len(listed), 500):
            chunk = listed[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for path, md5 in self.db.execute(
                f"SELECT path, md5 FROM entry_io WHERE md5 IN ({marks}) UNION "  # noqa: S608
                f"SELECT path, md5 FROM run_io WHERE md5 IN ({marks})",
                chunk * 2,
            ):
                if (path, md5) not in tainted:
                    held.setdefault(str(md5), set()).add(str(path))
            for folder, md5 in self.db.execute(
                f"SELECT dir, md5 FROM dir_files WHERE md5 IN ({marks})",  # noqa: S608
                chunk,
            ):
                if not any(m == folder for _, m in tainted):
                    held.setdefault(str(md5), set()).add(f"a folder version {folder}")
        return {m: sorted(p) for m, p in held.items()}

    def _commits(self) -> list[dict[str, Any]]:
        """Commits whose DVC files came to point at a tainted data version."""
        found: dict[str, set[str]] = {}
        for path, md5 in self.pairs:
            for sha, file in self.db.execute(
                "SELECT DISTINCT c.sha, c.path FROM changes c JOIN blob_entries be "
                "ON be.blob = c.blob JOIN entry_io io ON io.entry = be.entry "
                "WHERE io.md5 = ? AND io.path = ? AND io.role = 'out'",
                (md5, path),
            ):
                found.setdefault(str(sha), set()).add(str(file))
        return [{"commit": sha, "files": sorted(files)} for sha, files in sorted(found.items())]

    def _refs(self) -> list[str]:
        refs: set[str] = set()
        for path, md5 in self.pairs:
            refs |= {
                str(r[0])
                for r in self.db.execute(
                    "SELECT DISTINCT er.ref FROM entry_refs er JOIN entry_io io "
                    "ON io.entry = er.entry WHERE io.md5 = ? AND io.path = ?",
                    (md5, path),
                )
            }
        return sorted(refs)

    def _retrain(self) -> list[dict[str, Any]]:
        """Each tainted model version, its aliases and the tainted stages upstream of it."""
        back: dict[str, list[str]] = {}
        for edge in self.taint.graph.edges:
            back.setdefault(edge.target, []).append(edge.source)
        out = []
        for model in self.taint.models():
            seen = _upstream_of(model.id, back)
            stages = sorted(
                {
                    stage_of(self.taint.graph.nodes[n])
                    for n in seen
                    if self.taint.graph.nodes[n].kind in ("run", "stage", "entry")
                    and self.taint.status[n] == "tainted"
                }
            )
            out.append(
                {
                    "model": str(model.attrs.get("name")),
                    "version": str(model.attrs.get("version")),
                    "aliases": list(model.attrs.get("aliases", [])),
                    "stages": stages,
                }
            )
        return out

    def _protected(self) -> list[str]:
        """Tainted versions with an alias or tagged ``dvflow.keep``: erasing needs their names."""
        found = []
        for model in self.taint.models():
            name, version = str(model.attrs.get("name")), str(model.attrs.get("version"))
            row = self.db.execute(
                "SELECT tags FROM models WHERE name = ? AND version = ?", (name, version)
            ).fetchone()
            tags = json.loads(row[0] or "{}") if row else {}
            if model.attrs.get("aliases") or "dvflow.keep" in tags:
                found.append(f"{name}/{version}")
        return sorted(found)


def _workspace(root: Path, project: Path, pairs: Sequence[tuple[str, str]]) -> list[str]:
    """Work-tree paths (from the project's folder) that hold a tainted version right now."""
    from dvflow.trace._lineage import _worktree_entries

    tainted = set(pairs)
    held = {
        (path, md5)
        for e in _worktree_entries(root)
        for path, md5 in e.outs
        if (path, md5) in tainted
    }
    found = []
    for path, _ in sorted(held):
        local = root / path
        if _git.is_tracked(root, path):
            continue  # its bytes are in Git history: a warning says so
        if local.exists() and local.resolve().is_relative_to(project.resolve()):
            found.append(local.resolve().relative_to(project.resolve()).as_posix())
    return sorted(set(found))


def _in_git(root: Path, pairs: Sequence[tuple[str, str]]) -> list[str]:
    return sorted({path for path, _ in pairs if _git.is_tracked(root, path)})


def _upstream_of(node_id: str, back: Mapping[str, list[str]]) -> set[str]:
    seen, frontier = {node_id}, [node_id]
    while frontier:
        step = []
        for current in frontier:
            for source in back.get(current, []):
                if source not in seen:
                    seen.add(source)
                    step.append(source)
        frontier = step
    return seen


def _objects(project: Path, md5s: Sequence[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from dvflow.stores._erasure import find_objects

    objects = [o.plan_entry() for o in find_objects(project, md5s)]
    totals: dict[str, Any] = {"objects": len(objects), "bytes": sum(o["size"] for o in objects)}
    for where in ("remote", "cache"):
        mine = [o for o in objects if o["where"] == where]
        totals[where] = {"objects": len(mine), "bytes": sum(o["size"] for o in mine)}
    return objects, totals


def _logged_models(uri: str, run_ids: Sequence[str]) -> list[dict[str, str]]:
    from dvflow.stores._tracking import Tracker

    if not run_ids:
        return []
    found = Tracker(uri).logged_models_of_runs(list(run_ids))
    return [{"model_id": m, "run_id": r} for m, r in found]


def _remote(project: Path) -> dict[str, Any]:
    from dvflow.export._naming import strip_userinfo
    from dvflow.stores._erasure import remote_facts

    facts = remote_facts(project)
    url = redactor_for(project).redact(strip_userinfo(facts.url)) if facts.url else None
    return {"name": facts.name, "url": url, "versioned": facts.versioned}


def _warnings(
    remote: Mapping[str, Any], body: Mapping[str, Any], unmarked: Iterable[tuple[str, str]]
) -> list[str]:
    warnings = []
    for path, md5 in unmarked:
        warnings.append(f"{path} {md5} is not marked as personal data ('dvflow pii mark')")
    if remote.get("versioned"):
        warnings.append(
            "the remote keeps old object versions (bucket versioning or a version-aware "
            "remote): deleted objects stay as noncurrent versions until a lifecycle rule "
            "expires them (set one, or delete those versions by hand)"
        )
    warnings.append(
        "other clones' DVC caches, shared caches and copies outside the remote are out of "
        "reach: ask their owners to run 'dvc gc' or delete the listed md5s"
    )
    if body["workspace"]:
        warnings.append(
            f"the work tree's copies are deleted too ({', '.join(body['workspace'])}): "
            "'dvc status' then shows them missing until the pipeline runs without the data"
        )
    if body["in_git"]:
        warnings.append(
            f"{', '.join(body['in_git'])}: tracked by Git ('cache: false'), so the bytes are in "
            "Git's history and objects, not in DVC's: erase apply leaves them; remove them "
            "from the work tree and rewrite history yourself"
        )
    if body["commits"]:
        warnings.append(
            f"{len(body['commits'])} commit(s) still point at the erased data (history is not "
            "rewritten): checking them out or 'dvc pull' there will miss those objects"
        )
    if body["mlflow"]["runs"]:
        warnings.append(
            "MLflow runs are soft-deleted: their artifacts stay in the artifact store until "
            "'mlflow gc' purges the deleted runs"
        )
    if body["retrain"]:
        warnings.append(
            "model versions are not deleted: they stay registered, their model files erased; "
            "retrain them without the data and move their aliases"
        )
    return warnings


# -- apply --------------------------------------------------------------------------


def apply_erase(
    file: str | os.PathLike[str],
    confirm: str | None,
    acknowledge: Sequence[str] = (),
    path: str | os.PathLike[str] = ".",
    *,
    tracking_uri: str | None = None,
) -> AppliedErasure:
    """Delete what the plan lists, once confirmed; tombstones and an audit record after."""
    from dvflow.stores._erasure import delete_objects, delete_workspace
    from dvflow.stores._objects import StoredObject
    from dvflow.stores._tracking import Tracker

    plan = read_plan(Path(file), "erase")
    confirm_plan(plan, Path(file), confirm)
    digest = str(plan["plan_sha256"])
    missing = sorted(set(plan.get("protected", [])) - set(acknowledge))
    if missing:
        raise ProtectedVersionsError(missing)
    root, project = project_roots(path)
    config = load_config(project, tracking_uri=tracking_uri)
    objects = [StoredObject.from_plan(o) for o in plan["objects"]]
    deleted = delete_objects(project, objects)
    delete_workspace(project, plan.get("workspace", []))
    tracker = Tracker(config.tracking_uri)
    runs = [r["run_id"] for r in plan["mlflow"]["runs"] if tracker.delete_run(r["run_id"])]
    models = [
        m["model_id"]
        for m in plan["mlflow"]["logged_models"]
        if tracker.delete_logged_model(m["model_id"])
    ]
    at = now_utc()
    md5s = {o["md5"] for o in plan["objects"]} | {d["md5"] for d in plan["data_versions"]}
    stones = [Tombstone(m, str(plan["request_id"]), at) for m in sorted(md5s)]
    write_governance(project, read_governance(project).with_tombstones(stones))
    audit = _audit(project, root, plan, deleted=deleted, runs=runs, models=models)
    return AppliedErasure(
        digest,
        tuple(o.plan_entry() for o in deleted),
        tuple(runs),
        tuple(models),
        len(stones),
        audit,
    )


def _audit(
    project: Path,
    root: Path,
    plan: Mapping[str, Any],
    *,
    deleted: Sequence[Any],
    runs: Sequence[str],
    models: Sequence[str],
) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    file = project / AUDIT_DIR / f"{stamp}-erase-{str(plan['plan_sha256'])[:12]}.json"
    file.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "kind": "erase",
        "plan_sha256": plan["plan_sha256"],
        "request_id": plan["request_id"],
        "by": who(root),
        "at": now_utc(),
        "remote": plan["remote"],
        "deleted": [o.plan_entry() for o in deleted],
        "mlflow_runs_deleted": list(runs),
        "logged_models_deleted": list(models),
        "retrain": plan["retrain"],
    }
    text = json.dumps(record, sort_keys=True, indent=2) + "\n"
    file.write_text(redactor_for(project).redact(text), encoding="utf-8")
    return file
