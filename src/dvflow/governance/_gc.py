"""``dvflow gc plan`` and ``dvflow gc apply``: registry-aware garbage collection of DVC objects.

``plan`` lists the remote (and the project's cache), computes the keep set
(``_keep``), and writes every object outside it, older than the grace
period, into a plan file (``_plan``). ``apply`` deletes exactly that plan,
after checking that the user confirmed this plan's digest and that no
planned object has become needed since (a new commit, a new alias...). It
never deletes anything a plan does not list.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvflow.core._config import load_config
from dvflow.core._exceptions import PlanStaleError
from dvflow.core._git import _git
from dvflow.core._roots import project_roots

from ._keep import References, Scopes, expand, read_references
from ._plan import confirm, read_plan, seal, write_plan
from ._prices import price_for

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
DAY_S = 86400


@dataclass(frozen=True)
class GcOptions:
    """What a plan keeps besides the protected model versions; stored in the plan."""

    scopes: Scopes = field(default_factory=Scopes)
    protect: str = "aliased"
    projects: tuple[str, ...] = ()  # other projects sharing the remote (absolute folders)
    cache: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "scopes": self.scopes.names(),
            "protect": self.protect,
            "projects": list(self.projects),
            "cache": self.cache,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GcOptions:
        return cls(
            scopes=Scopes.from_names(data.get("scopes") or []),
            protect=str(data.get("protect") or "aliased"),
            projects=tuple(str(p) for p in data.get("projects") or ()),
            cache=bool(data.get("cache", True)),
        )


@dataclass
class GcPlan:
    """A written plan and what the command should say about it."""

    data: dict[str, Any]
    path: Path
    warnings: list[str] = field(default_factory=list)

    @property
    def sha(self) -> str:
        return str(self.data["plan_sha256"])


@dataclass
class GcApplied:
    plan_sha256: str
    remote_objects: int
    cache_objects: int
    bytes: int
    audit: Path


@dataclass
class _Keep:
    md5s: set[str]
    references: list[References]
    unreadable: list[str]


def _keep(project: Path, options: GcOptions, tracking_uri: str | None, store: Any) -> _Keep:
    """The keep set of this project and of every other project named, expanded."""
    refs = [read_references(project, tracking_uri=tracking_uri, protect=options.protect)]
    for other in options.projects:
        refs.append(read_references(other, protect=options.protect))
    scopes = options.scopes.or_default()
    md5s: set[str] = set()
    for one in refs:
        md5s |= one.kept(scopes)
    store.prefetch(md5s)  # the listings of directories, several requests at once
    expanded, unreadable = expand(md5s, store.listing)
    return _Keep(expanded, refs, unreadable)


def plan_gc(
    path: str | os.PathLike[str] = ".",
    *,
    remote: str | None = None,
    options: GcOptions | None = None,
    tracking_uri: str | None = None,
    out: Path | None = None,
    progress: Any = None,
    now: float | None = None,
    grace_days: int | None = None,
) -> GcPlan:
    """Write the plan of a gc of ``remote`` (default: the project's) and of the cache.

    ``grace_days`` overrides ``governance.grace_days`` of dvflow.yaml.
    """
    from dvflow.stores._dvc import DvcProject
    from dvflow.stores._objects import ObjectStore, list_cache

    options = options or GcOptions()
    options = GcOptions(
        options.scopes.or_default(),
        options.protect,
        tuple(sorted({str(Path(p).resolve()) for p in options.projects})),
        options.cache,
    )
    top, project = project_roots(path)
    config = load_config(project, tracking_uri=tracking_uri)
    tell = progress or (lambda *_: None)
    dvc = DvcProject(project)
    try:
        store = ObjectStore.open(dvc, remote)
        keep = _keep(project, options, tracking_uri, store)
        inventory = store.inventory(tell)
        warnings = [w for r in keep.references for w in r.warnings]
        cache_objects: Sequence[Any] = ()
        if options.cache:
            if _inside(dvc_cache(dvc), project):
                cache_objects = list_cache(dvc, tell).objects
            else:
                warnings.append(
                    "the DVC cache is outside the project (shared by other projects?): "
                    "it is left alone"
                )
        remote_objects = (
            _identify(inventory.objects, store) if store.info.versioned else list(inventory.objects)
        )
        everything = [*remote_objects, *cache_objects]
        grace = config.governance.grace_days if grace_days is None else grace_days
        deadline = (time.time() if now is None else now) - grace * DAY_S
        young_md5s = _young(everything, keep.md5s, deadline, store.listing)
    finally:
        dvc.close()
    planned, kept, young = [], 0, 0
    kept_bytes = 0
    for obj in everything:
        if obj.md5 is None or obj.md5 in keep.md5s:
            kept += 1
            kept_bytes += obj.size
        elif obj.md5 in young_md5s or obj.mtime is None or obj.mtime > deadline:
            young += 1
            kept += 1
            kept_bytes += obj.size
        else:
            planned.append(obj)
    price = price_for(store.info.scheme, config.governance.prices)
    remote_bytes = sum(o.size for o in planned if o.where == "remote")
    if keep.unreadable:
        shown = ", ".join(keep.unreadable[:3]) + (", ..." if len(keep.unreadable) > 3 else "")
        warnings.append(
            f"the listings of {len(keep.unreadable)} kept directory version(s) are in neither "
            f"the cache nor the remote ({shown}): files only they name cannot be told from "
            "garbage (the plan's unreadable_dirs)"
        )
    data = {
        "kind": "gc",
        "format": 1,
        "project": _relative(project, top),
        "remote": {
            "name": store.info.name,
            "url": store.info.url,
            "versioned": store.info.versioned,
        },
        "objects": [o.plan_entry() for o in planned],
        "totals": {
            "objects": len(planned),
            "bytes": sum(o.size for o in planned),
            "remote_objects": sum(1 for o in planned if o.where == "remote"),
            "remote_bytes": remote_bytes,
            "cache_objects": sum(1 for o in planned if o.where == "cache"),
            "cache_bytes": sum(o.size for o in planned if o.where == "cache"),
            "usd_per_month_saved": _round(price.monthly(remote_bytes)),
        },
        "kept": {
            "objects": kept,
            "bytes": kept_bytes,
            "in_grace_period": young,
            "keep_set_md5s": len(keep.md5s),
        },
        "grace_days": grace,
        "legacy_objects_left_alone": len(inventory.legacy),
        "price": price.to_dict(),
        "protected": [
            {**v.to_dict(), "project": _relative(Path(r.project), top)}
            for r in keep.references
            for v in r.protected
        ],
        "options": options.to_dict(),
        "unreadable_dirs": sorted(keep.unreadable),
    }
    sealed = seal(data)
    target = out or project / ".dvflow" / "plans" / f"gc-{sealed['plan_sha256'][:12]}.json"
    write_plan(sealed, target)
    if inventory.legacy:
        warnings.append(
            f"{len(inventory.legacy)} object(s) of DVC 2's layout at the remote's root are "
            "left alone (gc plans DVC 3's files/md5/ only)"
        )
    return GcPlan(sealed, target, warnings)


def _young(objects: Sequence[Any], keep: set[str], deadline: float, listing: Any) -> set[str]:
    """The md5s the grace period keeps: young objects, and every file a young ``.dir`` lists.

    A directory pushed recently may share files with older versions; DVC
    takes a ``.dir`` object in the remote as proof that its files are there
    too, so they must stay with it.
    """
    young = {
        str(o.md5)
        for o in objects
        if o.md5 and o.md5 not in keep and (o.mtime is None or o.mtime > deadline)
    }
    return expand(young, listing)[0]


def dvc_cache(dvc: Any) -> Path:
    from dvflow.stores._objects import cache_root

    return cache_root(dvc)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _identify(objects: Iterable[Any], store: Any) -> list[Any]:
    """Versions of a cloud-versioned remote with the md5 their content has.

    The pointer files of every commit say which version holds which md5;
    a version no pointer names is known by its ETag when that is an md5
    (a single-part upload); else it stays unknown, and is kept.
    """
    from dataclasses import replace

    by_version = {
        (path, version): md5
        for md5, places in store.cloud_files().items()
        for path, version in places
    }
    found = []
    for obj in objects:
        md5 = by_version.get((obj.path, obj.version_id))
        if md5 is None and obj.etag and _HEX32.match(obj.etag):
            md5 = obj.etag
        found.append(replace(obj, md5=md5))
    return found


def _relative(path: Path, top: Path) -> str:
    try:
        rel = path.resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()
    return rel or "."


def _round(amount: float | None) -> float | None:
    return None if amount is None else round(amount, 6)


# -- apply -----------------------------------------------------------------------


def apply_gc(
    plan_file: str | os.PathLike[str],
    *,
    confirm_sha: str | None,
    path: str | os.PathLike[str] = ".",
    tracking_uri: str | None = None,
    progress: Any = None,
) -> GcApplied:
    """Delete exactly what the plan lists, if it is confirmed and still holds."""
    from dvflow.stores._dvc import DvcProject
    from dvflow.stores._objects import ObjectStore, StoredObject, delete_from_cache

    file = Path(plan_file)
    data = read_plan(file, "gc")
    confirm(data, file, confirm_sha)
    top, project = project_roots(path)
    if data["project"] != _relative(project, top):
        raise PlanStaleError(
            str(file),
            f"it was made for project {data['project']!r}, not {_relative(project, top)!r}",
            hint="Run 'dvflow gc apply' in the project the plan was made for (-C DIR).",
        )
    options = GcOptions.from_dict(data.get("options") or {})
    tell = progress or (lambda *_: None)
    objects = [StoredObject.from_plan(o) for o in data["objects"]]
    dvc = DvcProject(project)
    try:
        store = ObjectStore.open(dvc, str(data["remote"]["name"]))
        if store.info.url != data["remote"]["url"]:
            raise PlanStaleError(
                str(file),
                f"remote {store.info.name!r} now points at {store.info.url}, not "
                f"{data['remote']['url']}",
            )
        keep = _keep(project, options, tracking_uri, store)
        needed = sorted({str(o.md5) for o in objects if o.md5 is None or o.md5 in keep.md5s})
        if needed:
            raise PlanStaleError(
                str(file), f"{len(needed)} object(s) it deletes are needed now ({_some(needed)})"
            )
        listed = _pushed_since(store, keep.md5s, int(data.get("grace_days", 0)), tell)
        claimed = sorted({str(o.md5) for o in objects if o.md5 in listed})
        if claimed:
            raise PlanStaleError(
                str(file),
                f"{len(claimed)} object(s) it deletes are listed by directory versions pushed "
                f"within the grace period ({_some(claimed)})",
            )
        on_remote = [o for o in objects if o.where == "remote"]
        in_cache = [o for o in objects if o.where == "cache"]
        if on_remote:
            store.delete(on_remote, tell)
            store.forget_index()
        delete_from_cache(dvc, in_cache)
    finally:
        dvc.close()
    audit = _write_audit(project, data, len(on_remote), len(in_cache))
    return GcApplied(
        plan_sha256=str(data["plan_sha256"]),
        remote_objects=len(on_remote),
        cache_objects=len(in_cache),
        bytes=sum(o.size for o in objects),
        audit=audit,
    )


def _some(md5s: Sequence[str]) -> str:
    return ", ".join(md5s[:3]) + (", ..." if len(md5s) > 3 else "")


def _pushed_since(store: Any, keep: set[str], grace_days: int, progress: Any) -> set[str]:
    """What the grace period keeps now, from a new listing of the remote.

    A colleague may have pushed, since the plan, a directory version that
    lists a planned file (already in the remote, so not uploaded again).
    """
    if not grace_days:
        return set()
    inventory = store.inventory(progress)
    objects = _identify(inventory.objects, store) if store.info.versioned else inventory.objects
    return _young(objects, keep, time.time() - grace_days * DAY_S, store.listing)


def _who(root: Path) -> str:
    ident = _git(root, "var", "GIT_AUTHOR_IDENT", ok_codes=(0, 128)).strip()
    return ident.partition(" <")[0] if ident else "unknown"


def _write_audit(project: Path, data: Mapping[str, Any], remote: int, cache: int) -> Path:
    """``.dvflow/audit/<UTC time>-gc-<sha[:12]>.json``: what was deleted, by whom, when."""
    now = datetime.datetime.now(datetime.UTC)
    sha = str(data["plan_sha256"])
    record = {
        "kind": "gc",
        "plan_sha256": sha,
        "who": _who(project),
        "when": now.isoformat(timespec="seconds"),
        "project": data["project"],
        "remote": data["remote"],
        "options": data.get("options"),
        "deleted": {
            "remote_objects": remote,
            "cache_objects": cache,
            "bytes": data["totals"]["bytes"],
        },
        "objects": data["objects"],
    }
    folder = project / ".dvflow" / "audit"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{now.strftime('%Y%m%dT%H%M%SZ')}-gc-{sha[:12]}.json"
    target.write_text(json.dumps(record, sort_keys=True, indent=2) + "\n", encoding="utf-8")
    return target
