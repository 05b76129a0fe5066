"""Walking the index: one query per step of the walk, one per kind of node after it.

The walk only finds which nodes and edges there are, a frontier at a time
(``IN (...)`` queries, never one query per node); what identifies each node
(commits, statuses, params that changed, refs) is then read in bulk. That
keeps an impact answer over ten thousand runs well under a second.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ._lineage import Direction, Graph, Node

_CHUNK = 500
_SOURCE_EDGES = {"import": "imported", "add": "added"}


class Walker:
    """Builds a Graph by walking the index from the target's nodes."""

    def __init__(self, db: sqlite3.Connection, direction: Direction, target: str) -> None:
        self.db = db
        self.graph = Graph(direction, target)
        self._stage_outputs: dict[str, set[frozenset[str]]] | None = None

    def walk(self, roots: Sequence[str]) -> Graph:
        self.graph.roots = list(roots)
        for node_id in roots:
            kind, _, key = node_id.partition(":")
            self._node(kind, key, key)
        frontier = list(roots)
        step = self._upstream if self.graph.direction == "upstream" else self._downstream
        while frontier:
            frontier = step(_group(frontier))
        _Attributes(self.db, self.graph).fill()
        return self.graph

    # -- building blocks

    def _node(self, kind: str, key: str, label: str) -> tuple[str, bool]:
        node_id = f"{kind}:{key}"
        return node_id, self.graph.add(Node(node_id, kind, label))

    def _link(self, source: tuple[str, bool], target: tuple[str, bool], kind: str) -> list[str]:
        """Link two nodes; returns the ids of those the link added to the graph."""
        self.graph.link(source[0], target[0], kind)
        return [node_id for node_id, added in (source, target) if added]

    def _old(self, node_id: str) -> tuple[str, bool]:
        return node_id, False

    def _rows(self, query: str, keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        for start in range(0, len(keys), _CHUNK):
            chunk = list(keys[start : start + _CHUNK])
            yield from self.db.execute(query.format(",".join("?" * len(chunk))), chunk)

    # -- upstream: from what was made to what made it

    def _upstream(self, by_kind: Mapping[str, list[str]]) -> list[str]:
        new: list[str] = []
        for name, alias in (key.split("@", 1) for key in by_kind.get("alias", [])):
            for (version,) in self.db.execute(
                "SELECT version FROM aliases WHERE name=? AND alias=?", (name, alias)
            ):
                model = self._node("model", f"{name}/{version}", f"{name} v{version}")
                new += self._link(model, self._old(f"alias:{name}@{alias}"), "aliased-as")
        for key, run_id, md5 in self._rows(
            "SELECT m.name || '/' || m.version, r.run_id, m.md5 FROM models m "
            "LEFT JOIN runs r ON r.run_id = m.run_id WHERE m.name || '/' || m.version IN ({})",
            by_kind.get("model", []),
        ):
            if run_id:
                source = self._node("run", run_id, run_id)
            elif md5:
                source = self._node("data", md5, md5)
            else:
                continue
            new += self._link(source, self._old(f"model:{key}"), "registered-from")
        runs = by_kind.get("run", [])
        for child, parent in self._rows(
            "SELECT run_id, parent_id FROM runs WHERE kind='stage' AND parent_id IN ({})", runs
        ):
            stage = self._node("run", child, child)
            new += self._link(stage, self._old(f"run:{parent}"), "part-of")
        for run_id, path, md5 in self._rows(
            "SELECT run_id, path, md5 FROM run_io WHERE role='in' AND run_id IN ({})", runs
        ):
            data = self._node("data", md5, path)
            new += self._link(data, self._old(f"run:{run_id}"), "consumed")
        for run_id, producer in self._rows(
            "SELECT r.run_id, p.run_id FROM runs r JOIN runs p ON p.run_id = r.produced_by "
            "WHERE r.run_id IN ({})",
            runs,
        ):
            made = self._node("run", producer, producer)
            new += self._link(made, self._old(f"run:{run_id}"), "restored-from")
        for entry, path, md5 in self._rows(
            "SELECT entry, path, md5 FROM entry_io WHERE role='dep' AND entry IN ({})",
            by_kind.get("entry", []),
        ):
            data = self._node("data", md5, path)
            new += self._link(data, self._old(f"entry:{entry}"), "consumed")
        return new + self._producers(by_kind.get("data", []))

    def _producers(self, data: Sequence[str]) -> list[str]:
        """Who made each data version: a dvflow run, else a committed stage, else a source."""
        new: list[str] = []
        # Every run that made the bytes itself; a data version only ever
        # restored or found up to date shows the first run that has it.
        made: dict[str, list[tuple[str, str | None]]] = {}
        for md5, run_id, status in self._rows(
            "SELECT io.md5, r.run_id, r.dvflow_status FROM run_io io "
            "JOIN runs r ON r.run_id = io.run_id "
            "WHERE io.role='out' AND r.kind='stage' AND io.md5 IN ({}) "
            "ORDER BY r.dvflow_status != 'ran', r.start_time",
            data,
        ):
            runs = made.setdefault(md5, [])
            if not runs or (status == "ran" and runs[0][1] == "ran"):
                runs.append((run_id, status))
        for md5, runs in made.items():
            for run_id, _ in runs:
                run = self._node("run", run_id, run_id)
                new += self._link(run, self._old(f"data:{md5}"), "produced")
        rest = [m for m in data if m not in made]
        for md5, entry, kind in self._rows(
            "SELECT DISTINCT io.md5, e.id, e.kind FROM entry_io io JOIN entries e "
            "ON e.id = io.entry WHERE io.role='out' AND io.md5 IN ({})",
            rest,
        ):
            source = self._node("entry", entry, entry)
            new += self._link(source, self._old(f"data:{md5}"), _SOURCE_EDGES.get(kind, "produced"))
        return new

    # -- downstream: from what was used to what was made of it

    def _downstream(self, by_kind: Mapping[str, list[str]]) -> list[str]:
        new: list[str] = []
        for key, alias in self._rows(
            "SELECT name || '/' || version, alias FROM aliases "
            "WHERE name || '/' || version IN ({})",
            by_kind.get("model", []),
        ):
            name = key.rpartition("/")[0]
            target = self._node("alias", f"{name}@{alias}", f"{name}@{alias}")
            new += self._link(self._old(f"model:{key}"), target, "aliased-as")
        runs = by_kind.get("run", [])
        for run_id, path, md5 in self._rows(
            "SELECT run_id, path, md5 FROM run_io WHERE role='out' AND run_id IN ({})", runs
        ):
            new += self._link(self._old(f"run:{run_id}"), self._node("data", md5, path), "produced")
        for run_id, name, version in self._rows(
            "SELECT run_id, name, version FROM models WHERE run_id IN ({})", runs
        ):
            model = self._node("model", f"{name}/{version}", f"{name} v{version}")
            new += self._link(self._old(f"run:{run_id}"), model, "registered-from")
        for entry, path, md5 in self._rows(
            "SELECT entry, path, md5 FROM entry_io WHERE role='out' AND entry IN ({})",
            by_kind.get("entry", []),
        ):
            data = self._node("data", md5, path)
            new += self._link(self._old(f"entry:{entry}"), data, "produced")
        return new + self._consumers(by_kind.get("data", []))

    def _consumers(self, data: Sequence[str]) -> list[str]:
        new: list[str] = []
        for md5, run_id in self._rows(
            "SELECT io.md5, io.run_id FROM run_io io JOIN runs r ON r.run_id = io.run_id "
            "WHERE io.role='in' AND r.kind='stage' AND io.md5 IN ({})",
            data,
        ):
            new += self._link(
                self._old(f"data:{md5}"), self._node("run", run_id, run_id), "consumed"
            )
        pairs = list(
            self._rows(
                "SELECT DISTINCT md5, entry FROM entry_io WHERE role='dep' AND md5 IN ({})", data
            )
        )
        covered = self._covered({entry for _, entry in pairs})
        for md5, entry in pairs:
            if entry not in covered:
                target = self._node("entry", entry, entry)
                new += self._link(self._old(f"data:{md5}"), target, "consumed")
        for md5, name, version in self._rows(
            "SELECT md5, name, version FROM models WHERE md5 IN ({})", data
        ):
            model = self._node("model", f"{name}/{version}", f"{name} v{version}")
            new += self._link(self._old(f"data:{md5}"), model, "registered-from")
        return new

    def _covered(self, entries: set[str]) -> set[str]:
        """The committed stage entries a dvflow run of the same stage accounts for.

        The run says more (status, params, metrics, commit); the entry would
        only repeat it.
        """
        if not entries:
            return set()
        if self._stage_outputs is None:
            found: dict[tuple[str, str], set[str]] = {}
            for stage, run_id, md5 in self.db.execute(
                "SELECT r.stage, r.run_id, io.md5 FROM run_io io JOIN runs r "
                "ON r.run_id = io.run_id WHERE io.role='out' AND r.kind='stage'"
            ):
                found.setdefault((stage, run_id), set()).add(md5)
            self._stage_outputs = {}
            for (stage, _), made in found.items():
                self._stage_outputs.setdefault(stage, set()).add(frozenset(made))
        outs: dict[str, set[str]] = {}
        keys: dict[str, str] = {}
        for entry, file, name, md5 in self._rows(
            "SELECT e.id, e.file, e.name, io.md5 FROM entries e JOIN entry_io io "
            "ON io.entry = e.id WHERE io.role='out' AND e.kind='stage' AND e.id IN ({})",
            sorted(entries),
        ):
            outs.setdefault(entry, set()).add(md5)
            folder = file.rpartition("/")[0]
            keys[entry] = f"{folder}/dvc.yaml:{name}" if folder else name
        return {
            entry
            for entry, made in outs.items()
            if frozenset(made) in self._stage_outputs.get(keys[entry], set())
        }


class _Attributes:
    """Reads what identifies each node, in bulk, once the walk is done."""

    def __init__(self, db: sqlite3.Connection, graph: Graph) -> None:
        self.db, self.graph = db, graph

    def _rows(self, query: str, keys: Iterable[str]) -> Iterator[tuple[Any, ...]]:
        keys = list(keys)
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            yield from self.db.execute(query.format(",".join("?" * len(chunk))), chunk)

    def _keys(self, kind: str) -> dict[str, Node]:
        return {n.id.partition(":")[2]: n for n in self.graph.nodes.values() if n.kind == kind}

    def fill(self) -> None:
        self._runs()
        self._entries()
        self._models()
        self._aliases()
        self._data()

    def _runs(self) -> None:
        nodes = self._keys("run")
        previous = self._previous_params(set(nodes))
        for row in self._rows(
            "SELECT run_id, stage, dvflow_status, status, git_commit, dirty, start_time, "
            "params, metrics, experiment_id, parent_id, result_commit, record_sha, kind "
            "FROM runs WHERE run_id IN ({})",
            nodes,
        ):
            run_id, stage, dstatus, status, commit, dirty, start, params = row[:8]
            node = nodes[run_id]
            node.label = stage or row[13] or run_id
            prev = previous.get(run_id)
            node.attrs = {
                "run_id": run_id,
                "stage": stage,
                "status": dstatus or str(status).lower(),
                "mlflow_status": status,
                "commit": commit,
                "dirty": bool(dirty),
                "result_commit": row[11],
                "experiment_id": row[9],
                "parent_run_id": row[10],
                "start_time": start,
                "record_sha256": row[12],
                "metrics": json.loads(row[8] or "{}"),
                "params_changed": _diff(json.loads(prev), json.loads(params or "{}"))
                if prev
                else {},
            }

    def _previous_params(self, run_ids: set[str]) -> dict[str, str | None]:
        """Each run's previous run of the same stage: its params, by one window query."""
        if not run_ids:
            return {}
        previous: dict[str, str | None] = {}
        for run_id, prev in self.db.execute(
            "SELECT run_id, LAG(params) OVER (PARTITION BY stage, experiment_id "
            "ORDER BY start_time, run_id) FROM runs WHERE kind='stage'"
        ):
            if run_id in run_ids:
                previous[run_id] = prev
        return previous

    def _entries(self) -> None:
        nodes = self._keys("entry")
        first: dict[str, tuple[str, int, str | None]] = {}
        for entry, sha, time, old in self._rows(
            "SELECT be.entry, c.sha, cm.time, c.old_blob FROM blob_entries be "
            "JOIN changes c ON c.blob = be.blob JOIN commits cm ON cm.sha = c.sha "
            "WHERE be.entry IN ({})",
            nodes,
        ):
            if entry not in first or (time, sha) < first[entry][1::-1]:
                first[entry] = (sha, time, old)
        rows = {
            row[0]: row[1:]
            for row in self._rows(
                "SELECT id, kind, file, name, cmd, params, source FROM entries WHERE id IN ({})",
                nodes,
            )
        }
        before = self._params_in_blobs({f[2] for f in first.values() if f[2]})
        for entry, node in nodes.items():
            kind, file, name, cmd, params, source = rows[entry]
            sha, time, old = first.get(entry, (None, None, None))
            node.attrs = {"entry": entry, "file": file, "commit": sha, "commit_time": time}
            if kind == "stage":
                prev = before.get((old, file, name)) if old else None
                node.kind, node.label = "stage", name
                node.attrs |= {
                    "stage": name,
                    "cmd": cmd,
                    "params_changed": _diff(json.loads(prev), json.loads(params or "{}"))
                    if prev
                    else {},
                }
            else:
                node.kind, node.label = "source", file
                node.attrs["how"] = "dvc import" if kind == "import" else "dvc add"
                if source:
                    node.attrs["source"] = json.loads(source)

    def _params_in_blobs(self, blobs: set[str]) -> dict[tuple[str, str, str], str]:
        return {
            (blob, file, name): params
            for blob, file, name, params in self._rows(
                "SELECT be.blob, e.file, e.name, e.params FROM blob_entries be "
                "JOIN entries e ON e.id = be.entry WHERE be.blob IN ({})",
                blobs,
            )
        }

    def _models(self) -> None:
        nodes = self._keys("model")
        aliases: dict[str, list[str]] = {}
        for key, alias in self._rows(
            "SELECT name || '/' || version, alias FROM aliases "
            "WHERE name || '/' || version IN ({}) ORDER BY alias",
            nodes,
        ):
            aliases.setdefault(key, []).append(alias)
        for key, name, version, run_id, md5, commit, record, source, tags in self._rows(
            "SELECT name || '/' || version, name, version, run_id, md5, git_commit, record_sha, "
            "source, tags FROM models WHERE name || '/' || version IN ({})",
            nodes,
        ):
            node = nodes[key]
            node.label = f"{name} v{version}"
            node.attrs = {
                "name": name,
                "version": version,
                "aliases": aliases.get(key, []),
                "run_id": run_id,
                "md5": md5,
                "commit": commit,
                "record_sha256": record,
                "source": source,
                "dirty": json.loads(tags or "{}").get("dvflow.git_dirty") == "true",
            }

    def _aliases(self) -> None:
        for key, node in self._keys("alias").items():
            name, _, alias = key.partition("@")
            row = self.db.execute(
                "SELECT version FROM aliases WHERE name=? AND alias=?", (name, alias)
            ).fetchone()
            node.attrs = {
                "name": name,
                "alias": alias,
                "version": row[0] if row else None,
                "in_use": True,
            }

    def _data(self) -> None:
        """Each data version's path and the branches and tags whose history commits it."""
        nodes = self._keys("data")
        refs: dict[str, set[str]] = {}
        for md5, names in self._rows(
            "SELECT md5, GROUP_CONCAT(ref, char(10)) FROM (SELECT DISTINCT io.md5, er.ref "
            "FROM entry_io io JOIN entry_refs er ON er.entry = io.entry "
            "WHERE io.role = 'out' AND io.md5 IN ({})) "
            "GROUP BY md5",
            nodes,
        ):
            refs[md5] = {_short_ref(ref) for ref in names.split("\n")}
        unnamed = [md5 for md5, node in nodes.items() if node.label == md5]
        paths: dict[str, str] = {}
        for table in ("entry_io", "run_io"):
            for md5, path in self._rows(
                f"SELECT md5, path FROM {table} WHERE md5 IN ({{}})",  # noqa: S608 - fixed names
                [m for m in unnamed if m not in paths],
            ):
                paths.setdefault(md5, path)
        for md5, node in nodes.items():
            node.label = paths.get(md5, node.label)
            names = refs.get(md5, set())
            # HEAD is only worth naming when no branch or tag holds the data.
            node.attrs = {
                "path": node.label,
                "md5": md5,
                "refs": sorted(names - {"HEAD"} or names),
            }


def _group(ids: Iterable[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for node_id in ids:
        kind, _, key = node_id.partition(":")
        groups.setdefault(kind, []).append(key)
    return groups


def _diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[str | None]]:
    return {
        key: [old.get(key), new.get(key)]
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    }


def _short_ref(ref: str) -> str:
    for prefix in ("refs/heads/", "refs/tags/"):
        if ref.startswith(prefix):
            return ref[len(prefix) :]
    return ref
