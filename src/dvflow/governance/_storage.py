"""``dvflow storage``: what the data costs, where, and what each byte is kept for.

Totals are what the listing of the remote and of the cache found (every
object, every version on a cloud-versioned remote), so they are the bytes
stored, not the sizes DVC's pointer files claim. Per tracked path and per
data version an object counts once, however many versions share it. Each
object of the remote is kept for the first reason that holds:

    model           the lineage of a protected model version (as gc protects)
    head            HEAD or the work tree
    branches_tags   only the tip of another branch or tag
    history         only older commits
    nothing         no commit, no protected model version: gc would delete it
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dvflow.core._config import load_config
from dvflow.core._roots import project_roots

from ._keep import References, expand, read_references
from ._prices import price_for

REASONS = ("model", "head", "branches_tags", "history", "nothing")


@dataclass
class StorageReport:
    """The ``--json`` shape of ``dvflow storage`` is ``to_dict()``."""

    remote: dict[str, Any]
    remote_totals: dict[str, int]
    cache_totals: dict[str, int]
    kept_for: dict[str, dict[str, int]]
    paths: list[dict[str, Any]]
    versions: list[dict[str, Any]]
    growth: list[dict[str, Any]]
    price: dict[str, Any]
    usd_per_month: float | None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "remote": self.remote,
            "remote_totals": self.remote_totals,
            "cache_totals": self.cache_totals,
            "kept_for": self.kept_for,
            "paths": self.paths,
            "versions": self.versions,
            "growth": self.growth,
            "price": self.price,
            "usd_per_month": self.usd_per_month,
        }


def storage_report(
    path: str | os.PathLike[str] = ".",
    *,
    remote: str | None = None,
    commits: int = 10,
    tracking_uri: str | None = None,
    progress: Any = None,
) -> StorageReport:
    """Bytes and objects per remote and cache, per path and version, by reason, and their cost."""
    from dvflow.stores._dvc import DvcProject
    from dvflow.stores._objects import ObjectStore, list_cache

    from ._gc import _identify

    _, project = project_roots(path)
    config = load_config(project, tracking_uri=tracking_uri)
    tell = progress or (lambda *_: None)
    dvc = DvcProject(project)
    try:
        store = ObjectStore.open(dvc, remote)
        refs = read_references(project, tracking_uri=tracking_uri, recent=commits + 1)
        inventory = store.inventory(tell)
        cache = list_cache(dvc, tell)
        objects = _identify(inventory.objects, store) if store.info.versioned else inventory.objects
        # Per path, version and commit: the bytes the remote holds (the bill).
        sizes = {o.md5: o.size for o in objects if o.md5 and o.latest}
        store.prefetch({*refs.history, *refs.model, *refs.head, *refs.branches, *refs.tags})
        store.prefetch(refs.paths)
        reasons = _reasons(refs, store.listing)
        kept_for = {r: {"objects": 0, "bytes": 0} for r in REASONS}
        for obj in objects:
            reason = reasons.get(obj.md5 or "", "nothing")
            kept_for[reason]["objects"] += 1
            kept_for[reason]["bytes"] += obj.size
        paths, versions = _by_path(refs, store.listing, sizes)
        growth = _growth(refs, store.listing, sizes, commits)
    finally:
        dvc.close()
    everything = [*inventory.objects, *inventory.legacy, *inventory.other]
    stored = sum(o.size for o in everything)
    price = price_for(store.info.scheme, config.governance.prices)
    monthly = price.monthly(stored)
    return StorageReport(
        remote={"name": store.info.name, "url": store.info.url, "versioned": store.info.versioned},
        remote_totals={
            "objects": len(everything),
            "bytes": stored,
            "dvc_objects": len(inventory.objects),
            "dvc_bytes": inventory.bytes,
            "legacy_objects": len(inventory.legacy),
            "legacy_bytes": sum(o.size for o in inventory.legacy),
            "other_objects": len(inventory.other),
            "other_bytes": sum(o.size for o in inventory.other),
            "noncurrent_versions": sum(1 for o in objects if not o.latest),
            "noncurrent_bytes": sum(o.size for o in objects if not o.latest),
        },
        cache_totals={"objects": len(cache.objects), "bytes": cache.bytes},
        kept_for=kept_for,
        paths=paths,
        versions=versions,
        growth=growth,
        price=price.to_dict(),
        usd_per_month=None if monthly is None else round(monthly, 6),
        warnings=list(refs.warnings),
    )


Listing = Callable[[str], Mapping[str, str] | None]


def _reasons(refs: References, listing: Listing) -> dict[str, str]:
    """md5 -> the first reason (``REASONS``) it is kept for."""
    found: dict[str, str] = {}
    groups = (
        ("model", refs.model),
        ("head", refs.head),
        ("branches_tags", refs.branches | refs.tags),
        ("history", refs.history),
    )
    for reason, md5s in groups:
        for md5 in expand(md5s, listing)[0]:
            found.setdefault(md5, reason)
    return found


def _objects_of(md5: str, listing: Listing) -> set[str]:
    return expand([md5], listing)[0]


def _by_path(
    refs: References, listing: Listing, sizes: Mapping[str, int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per tracked path (objects of all its versions, once) and per data version."""
    per_path: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    versions: list[dict[str, Any]] = []
    for md5, paths in refs.paths.items():
        objects = _objects_of(md5, listing)
        stored = {m for m in objects if m in sizes}
        for path in paths:
            per_path.setdefault(path, set()).update(stored)
            counts[path] = counts.get(path, 0) + 1
            versions.append(
                {
                    "path": path,
                    "md5": md5,
                    "objects": len(stored),
                    "bytes": sum(sizes[m] for m in stored),
                    "missing_objects": len(objects - stored),
                }
            )
    rows: list[dict[str, Any]] = [
        {
            "path": path,
            "versions": counts[path],
            "objects": len(md5s),
            "bytes": sum(sizes[m] for m in md5s),
        }
        for path, md5s in per_path.items()
    ]
    rows.sort(key=lambda p: (-int(p["bytes"]), str(p["path"])))
    versions.sort(key=lambda v: (-int(v["bytes"]), str(v["path"]), str(v["md5"])))
    return rows, versions


def _growth(
    refs: References, listing: Listing, sizes: Mapping[str, int], commits: int
) -> list[dict[str, Any]]:
    """For the last ``commits`` commits of HEAD (oldest first): the bytes each refers to,
    and the bytes new with it: named by no earlier commit of the line (the one just
    before the window included), so a revert to older data adds nothing.
    """
    line = [
        (sha, when, {m for m in expand(md5s, listing)[0] if m in sizes})
        for sha, when, md5s in reversed(refs.recent)
    ]
    seen: set[str] = set()
    for _, _, objects in line[:-commits] if len(line) > commits else []:
        seen |= objects
    rows = []
    for sha, when, objects in line[-commits:] if commits else []:
        rows.append(
            {
                "commit": sha,
                "time": when,
                "bytes": sum(sizes[m] for m in objects),
                "added_bytes": sum(sizes[m] for m in objects - seen),
            }
        )
        seen |= objects
    return rows
