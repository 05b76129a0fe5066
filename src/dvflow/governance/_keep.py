"""What must be kept: the objects protected model versions and the named Git scopes need.

The keep set of a project is the union of

- the lineage closure of every protected model version: the data versions
  ``dvflow lineage models:/NAME/V`` reaches (inputs and outputs of every
  stage run upstream, and the model file itself). Protected by default: every
  version with an alias, and every version tagged ``dvflow.keep``;
  ``registered``: every registered version;
- the Git scopes named: ``workspace`` (HEAD and the work tree's DVC files),
  ``all_branches`` (the tip of every branch, remote-tracking ones included),
  ``all_tags`` (the tip of every tag), ``all_commits`` (every commit any
  branch or tag reaches). dvflow's lineage index has read every ``dvc.lock``
  and ``.dvc`` file of every commit, so no scope re-reads Git history;
- for a directory version, every file object its ``.dir`` listing names.

Everything is read from the lineage index, brought up to date first: Git
always, the tracking store always (a registry that moved since the last
sync must not be missed); a store that does not answer stops the command.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvflow.core import _history
from dvflow.core._config import load_config

PROTECT_CHOICES = ("aliased", "registered")
KEEP_TAG = "dvflow.keep"
_CHUNK = 500


@dataclass(frozen=True)
class Scopes:
    """The Git scopes whose data is kept (as ``dvc gc``'s flags)."""

    workspace: bool = False
    all_branches: bool = False
    all_tags: bool = False
    all_commits: bool = False

    def names(self) -> list[str]:
        return [name for name, on in vars(self).items() if on]

    def or_default(self) -> Scopes:
        """None named is ``workspace``: never keep less than what HEAD needs."""
        return self if self.names() else Scopes(workspace=True)

    @classmethod
    def from_names(cls, names: Iterable[str]) -> Scopes:
        return cls(**dict.fromkeys(names, True))


@dataclass(frozen=True)
class ProtectedVersion:
    """A model version whose lineage is kept, and why."""

    name: str
    version: str
    aliases: tuple[str, ...]
    tagged_keep: bool
    data: tuple[tuple[str, str], ...]  # (path, md5) of its lineage closure
    runs: tuple[str, ...] = ()  # the MLflow runs in its lineage (the MLflow side of gc)

    @property
    def label(self) -> str:
        aliases = "".join(f" @{a}" for a in self.aliases)
        return f"{self.name} v{self.version}{aliases}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "aliases": list(self.aliases),
            "tagged_keep": self.tagged_keep,
            "data_versions": len(self.data),
            "runs": len(self.runs),
        }


@dataclass
class References:
    """The md5s one project refers to, by why (directories not yet expanded)."""

    project: str
    model: set[str] = field(default_factory=set)
    head: set[str] = field(default_factory=set)
    branches: set[str] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)
    history: set[str] = field(default_factory=set)
    paths: dict[str, set[str]] = field(default_factory=dict)  # md5 -> paths it was at
    protected: list[ProtectedVersion] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # The last commits of HEAD (first parents), newest first: (sha, time, md5s).
    recent: list[tuple[str, int, set[str]]] = field(default_factory=list)

    def kept(self, scopes: Scopes) -> set[str]:
        kept = set(self.model) | self.head if scopes.workspace else set(self.model)
        if scopes.all_branches:
            kept |= self.branches | self.head
        if scopes.all_tags:
            kept |= self.tags | self.head
        if scopes.all_commits:
            kept |= self.history | self.branches | self.tags | self.head
        return kept


def read_references(
    path: str | os.PathLike[str],
    *,
    tracking_uri: str | None = None,
    protect: str = "aliased",
    recent: int = 0,
) -> References:
    """Every md5 the project around ``path`` refers to, sorted by why it is referred to."""
    from dvflow.trace._queries import open_index_at

    config_root = Path(path).resolve()
    uri = load_config(config_root, tracking_uri=tracking_uri).tracking_uri
    _store_answers(uri)
    index, _, warnings = open_index_at(path, tracking_uri=tracking_uri, sync=True)
    try:
        db = index.db
        refs = References(project=str(index.project), warnings=list(warnings))
        tips = dict(db.execute("SELECT name, sha FROM refs").fetchall())
        head = tips.get("HEAD")
        refs.head = _at_tips(index.root, db, [head] if head else []) | _worktree(index.root)
        refs.branches = _at_tips(
            index.root,
            db,
            [s for n, s in tips.items() if n.startswith(("refs/heads/", "refs/remotes/"))],
        )
        refs.tags = _at_tips(
            index.root, db, [s for n, s in tips.items() if n.startswith("refs/tags/")]
        )
        refs.history = {str(r[0]) for r in db.execute("SELECT DISTINCT md5 FROM entry_io")}
        for md5, where in db.execute(
            "SELECT md5, path FROM entry_io WHERE role = 'out' UNION "
            "SELECT md5, path FROM run_io WHERE role = 'out'"
        ):
            refs.paths.setdefault(str(md5), set()).add(str(where))
        refs.protected = _protected(db, index.root, protect)
        if recent and head:
            refs.recent = _recent(index.root, db, recent)
        for version in refs.protected:
            refs.model |= {md5 for _, md5 in version.data}
        return refs
    finally:
        index.close()


def _store_answers(uri: str) -> None:
    """gc must see the registry as it is now: a store that does not answer stops it."""
    from dvflow.core._exceptions import TrackingError
    from dvflow.stores._tracking import check_existing_store

    try:
        check_existing_store(uri)
    except TrackingError as exc:
        if uri.startswith("sqlite:///") and "no store there yet" in exc.problem:
            return  # a project that never ran dvflow: no model to protect
        raise


def _at_tips(root: Path, db: Any, shas: Sequence[str]) -> set[str]:
    """The md5s the DVC files of these commits' trees name."""
    blobs: set[str] = set()
    for sha in sorted(set(shas)):
        blobs |= set(_history.tree_files(root, sha).values())
    return _md5s_of_blobs(db, sorted(blobs))


def _recent(root: Path, db: Any, count: int) -> list[tuple[str, int, set[str]]]:
    from dvflow.core._git import _git

    out = _git(root, "log", "--first-parent", f"-n{count}", "--format=%H %ct", "HEAD")
    found = []
    for line in out.split("\n"):
        if line.strip():
            sha, _, when = line.partition(" ")
            found.append((sha, int(when or 0), _at_tips(root, db, [sha])))
    return found


def _md5s_of_blobs(db: Any, blobs: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(blobs), _CHUNK):
        chunk = blobs[start : start + _CHUNK]
        marks = ",".join("?" * len(chunk))
        found |= {
            str(row[0])
            for row in db.execute(
                "SELECT DISTINCT io.md5 FROM blob_entries be JOIN entry_io io "  # noqa: S608
                f"ON io.entry = be.entry WHERE be.blob IN ({marks})",
                chunk,
            )
        }
    return found


def _worktree(root: Path) -> set[str]:
    """The md5s the work tree's DVC files name (committed or not)."""
    from dvflow.trace._lineage import _worktree_entries

    return {md5 for entry in _worktree_entries(root) for _, md5 in (*entry.deps, *entry.outs)}


def _protected(db: Any, root: Path, protect: str) -> list[ProtectedVersion]:
    from dvflow.trace._lineage import build_graph

    aliases: dict[tuple[str, str], list[str]] = {}
    for name, alias, version in db.execute("SELECT name, alias, version FROM aliases"):
        aliases.setdefault((str(name), str(version)), []).append(str(alias))
    found = []
    rows = db.execute("SELECT name, version, md5, tags FROM models").fetchall()
    for name, version, md5, tags in sorted(rows, key=lambda r: (r[0], int(r[1]))):
        named = tuple(sorted(aliases.get((str(name), str(version)), [])))
        keep = KEEP_TAG in _tags(tags)
        if protect != "registered" and not named and not keep:
            continue
        graph = build_graph(db, root, f"models:/{name}/{version}", "upstream", root)
        data = {_pair(node_id) for node_id in graph.nodes if node_id.startswith("data:")}
        if md5:
            data.add((str(_tags(tags).get("dvflow.model_path") or ""), str(md5)))
        runs = sorted(n.partition(":")[2] for n in graph.nodes if n.startswith("run:"))
        found.append(
            ProtectedVersion(str(name), str(version), named, keep, tuple(sorted(data)), tuple(runs))
        )
    return found


def _tags(text: Any) -> Mapping[str, Any]:
    try:
        tags = json.loads(text) if text else {}
    except ValueError:
        return {}
    return tags if isinstance(tags, dict) else {}


def _pair(node_id: str) -> tuple[str, str]:
    md5, _, path = node_id.partition(":")[2].partition(":")
    return path, md5


def expand(
    md5s: Iterable[str], listing: Callable[[str], Mapping[str, str] | None]
) -> tuple[set[str], list[str]]:
    """``md5s`` and, for each ``.dir``, the file objects its listing names.

    Returns them with the directories whose listing neither the cache nor
    the remote holds (their files cannot be told apart from garbage).
    """
    found = set(md5s)
    unreadable = []
    for md5 in sorted(m for m in found if m.endswith(".dir")):
        files = listing(md5)
        if files is None:
            unreadable.append(md5)
            continue
        found |= set(files.values())
    return found, unreadable
