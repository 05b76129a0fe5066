"""Walking the index: one query per step of the walk, one per kind of node after it.

The walk only finds which nodes and edges there are, a frontier at a time
(``IN (...)`` queries, never one query per node); what identifies each node
(commits, statuses, params that changed, refs) is then read in bulk. That
keeps an impact answer over ten thousand runs well under a second.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ._graph import Direction, Graph, Node
from ._nodes import Attributes, CodePaths, split_key

_CHUNK = 500
_SOURCE_EDGES = {"import": "imported", "add": "added"}


def data_key(path: str, md5: str) -> str:
    """The key of a data node: one path at one md5 (content alone is not identity)."""
    return f"{md5}:{path}"


class Walker:
    """Builds a Graph by walking the index from the target's nodes."""

    def __init__(
        self,
        db: sqlite3.Connection,
        direction: Direction,
        target: str,
        context: Iterable[str] = (),
    ) -> None:
        self.db = db
        self.graph = Graph(direction, target)
        # The stage entries of the DVC files the target was read from.
        self.context = frozenset(context)
        self._stage_outputs: dict[str, set[frozenset[str]]] | None = None
        # Producers of a data version other than the one the walk followed.
        self.also: dict[str, set[str]] = {}
        # Folders reached from one file in them: the other files are not its lineage.
        self._from_file: set[tuple[str, str]] = set()
        self._code: CodePaths | None = None

    def walk(self, roots: Sequence[str]) -> Graph:
        self.graph.roots = list(roots)
        for node_id in roots:
            kind, _, key = node_id.partition(":")
            label = split_key(key)[0] if kind == "data" else key
            self._node(kind, key, label)
        frontier = list(roots)
        step = self._upstream if self.graph.direction == "upstream" else self._downstream
        while frontier:
            frontier = step(_group(frontier))
        Attributes(self.db, self.graph, self.also).fill()
        return self.graph

    # -- building blocks

    def _node(self, kind: str, key: str, label: str) -> tuple[str, bool]:
        node_id = f"{kind}:{key}"
        return node_id, self.graph.add(Node(node_id, kind, label))

    def _data(self, path: str, md5: str) -> tuple[str, bool]:
        return self._node("data", data_key(path, md5), path)

    def _link(self, source: tuple[str, bool], target: tuple[str, bool], kind: str) -> list[str]:
        """Link two nodes; returns the ids of those the link added to the graph."""
        self.graph.link(source[0], target[0], kind)
        return [node_id for node_id, added in (source, target) if added]

    def _old(self, node_id: str) -> tuple[str, bool]:
        return node_id, False

    def _rows(
        self, query: str, keys: Iterable[str], *, twice: bool = False
    ) -> Iterator[tuple[Any, ...]]:
        keys = list(keys)
        for start in range(0, len(keys), _CHUNK):
            chunk = list(keys[start : start + _CHUNK])
            args = chunk * 2 if twice else chunk
            yield from self.db.execute(query.format(",".join("?" * len(chunk))), args)

    def _io(self, query: str, wanted: set[tuple[str, str]]) -> Iterator[tuple[Any, ...]]:
        """Rows ``(path, md5, ...)`` of ``query`` (selected by md5) for the wanted pairs only."""
        for row in self._rows(query, sorted({md5 for _, md5 in wanted})):
            if (row[0], row[1]) in wanted:
                yield row

    # -- upstream: from what was made to what made it

    def _upstream(self, by_kind: Mapping[str, list[str]]) -> list[str]:
        new: list[str] = []
        for name, alias in (key.split("@", 1) for key in by_kind.get("alias", [])):
            for (version,) in self.db.execute(
                "SELECT version FROM aliases WHERE name=? AND alias=?", (name, alias)
            ):
                model = self._node("model", f"{name}/{version}", f"{name} v{version}")
                new += self._link(model, self._old(f"alias:{name}@{alias}"), "aliased-as")
        for key, run_id, md5, path in self._rows(
            "SELECT m.name || '/' || m.version, r.run_id, m.md5, "
            "json_extract(m.tags, '$.\"dvflow.model_path\"') FROM models m "
            "LEFT JOIN runs r ON r.run_id = m.run_id WHERE m.name || '/' || m.version IN ({})",
            by_kind.get("model", []),
        ):
            if run_id:
                source = self._node("run", run_id, run_id)
            elif md5:
                source = self._data(path or self._some_path(md5), md5)
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
            new += self._link(self._data(path, md5), self._old(f"run:{run_id}"), "consumed")
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
            new += self._link(self._data(path, md5), self._old(f"entry:{entry}"), "consumed")
        return new + self._producers([split_key(k) for k in by_kind.get("data", [])])

    def _some_path(self, md5: str) -> str:
        row = self.db.execute(
            "SELECT path FROM (SELECT path, md5 FROM entry_io UNION SELECT path, md5 FROM run_io) "
            "WHERE md5 = ? ORDER BY path LIMIT 1",
            (md5,),
        ).fetchone()
        return str(row[0]) if row else md5

    def _producers(self, data: Sequence[tuple[str, str]]) -> list[str]:
        """Who made each data version: a dvflow run, else a committed stage, else a source.

        Of several producers of the same bytes, the one its consumer can have
        used is followed (see ``_Choice``); the others are only named.
        """
        new: list[str] = []
        wanted = set(data)
        runs: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
        for row in self._io(
            "SELECT io.path, io.md5, r.run_id, r.dvflow_status, r.parent_id, r.start_time, "
            "r.end_time FROM run_io io JOIN runs r ON r.run_id = io.run_id "
            "WHERE io.role='out' AND r.kind='stage' AND io.md5 IN ({})",
            wanted,
        ):
            runs.setdefault((row[0], row[1]), []).append(row[2:])
        entries: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for path, md5, entry, kind in self._io(
            "SELECT DISTINCT io.path, io.md5, e.id, e.kind FROM entry_io io JOIN entries e "
            "ON e.id = io.entry WHERE io.role='out' AND io.md5 IN ({})",
            wanted,
        ):
            entries.setdefault((path, md5), []).append((entry, kind))
        keys = (f"data:{data_key(*p)}" for p in data)
        choice = _Choice(self.db, self.graph, keys, self.context)
        for pair in data:
            node_id = f"data:{data_key(*pair)}"
            chosen, others = choice.producers(node_id, runs.get(pair, []), entries.get(pair, []))
            for made, kind in chosen:
                key = made.partition(":")[2]
                new += self._link(
                    self._node(made.partition(":")[0], key, key), self._old(node_id), kind
                )
            if others:
                self.also.setdefault(node_id, set()).update(others)
        orphans = [pair for pair in data if pair not in runs and pair not in entries]
        if self._code is None:
            self._code = CodePaths(self.db)
        # A code file's folder made nothing: only data has a producer to find.
        inside = [pair for pair in orphans if not self._code.is_code(pair[0])]
        return (
            new
            + self._containers(inside, upstream=True)
            + self._contents(orphans, roles=("out",), upstream=True)
        )

    def _contents(
        self, data: Sequence[tuple[str, str]], *, roles: tuple[str, ...], upstream: bool
    ) -> list[str]:
        """Link directory versions to the files in them that DVC files name elsewhere.

        Upstream, a folder nothing produced (a dependency tracked by Git) was
        made of files that were produced (``dvc add``ed inside it); downstream,
        a stage may read one file of an output folder.
        """
        folders = {
            md5: path
            for path, md5 in data
            if md5.endswith(".dir") and (path, md5) not in self._from_file
        }
        files: dict[str, set[tuple[str, str]]] = {}
        for folder, rel, md5 in self._rows(
            "SELECT dir, relpath, md5 FROM dir_files WHERE dir IN ({})", sorted(folders)
        ):
            files.setdefault(md5, set()).add((f"{folders[folder]}/{rel}", folder))
        new: list[str] = []
        for path, md5, folder in self._named_files(files, roles):
            file = self._data(path, md5)
            dir_node = self._old(f"data:{data_key(folders[folder], folder)}")
            if upstream:
                new += self._link(file, dir_node, "contained-in")
            else:
                new += self._link(dir_node, file, "contains")
        return new

    def _named_files(
        self, files: Mapping[str, set[tuple[str, str]]], roles: tuple[str, ...]
    ) -> Iterator[tuple[str, str, str]]:
        """``(path, md5, folder md5)`` of listed files that DVC files name in ``roles``."""
        for path, md5, role in self._rows(
            "SELECT DISTINCT path, md5, role FROM entry_io WHERE md5 IN ({0}) UNION "
            "SELECT DISTINCT path, md5, role FROM run_io WHERE md5 IN ({0})",
            sorted(files),
            twice=True,
        ):
            if role not in roles:
                continue
            for file, folder in files[md5]:
                if file == path:
                    yield path, md5, folder

    def _containers(self, data: Sequence[tuple[str, str]], *, upstream: bool) -> list[str]:
        """Link files to the directory versions whose ``.dir`` listing holds them."""
        new: list[str] = []
        wanted = set(data)
        listed: dict[str, list[tuple[str, str]]] = {}
        for folder, rel, md5 in self._rows(
            "SELECT dir, relpath, md5 FROM dir_files WHERE md5 IN ({})",
            sorted({md5 for _, md5 in wanted}),
        ):
            listed.setdefault(folder, []).append((rel, md5))
        for path, folder in self._rows(
            "SELECT DISTINCT path, md5 FROM (SELECT path, md5 FROM entry_io UNION ALL "
            "SELECT path, md5 FROM run_io) WHERE md5 IN ({})",
            sorted(listed),
        ):
            for rel, md5 in listed[folder]:
                file = (f"{path}/{rel}", md5)
                if file not in wanted:
                    continue
                self._from_file.add((path, folder))
                if upstream:
                    new += self._link(
                        self._data(path, folder), self._old(f"data:{data_key(*file)}"), "contains"
                    )
                else:
                    new += self._link(
                        self._old(f"data:{data_key(*file)}"),
                        self._data(path, folder),
                        "contained-in",
                    )
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
            new += self._link(self._old(f"run:{run_id}"), self._data(path, md5), "produced")
        for run_id, name, version in self._rows(
            "SELECT run_id, name, version FROM models WHERE run_id IN ({})", runs
        ):
            model = self._node("model", f"{name}/{version}", f"{name} v{version}")
            new += self._link(self._old(f"run:{run_id}"), model, "registered-from")
        for entry, path, md5 in self._rows(
            "SELECT entry, path, md5 FROM entry_io WHERE role='out' AND entry IN ({})",
            by_kind.get("entry", []),
        ):
            new += self._link(self._old(f"entry:{entry}"), self._data(path, md5), "produced")
        data = [split_key(k) for k in by_kind.get("data", [])]
        return (
            new
            + self._consumers(data)
            + self._containers(data, upstream=False)
            + self._contents(data, roles=("in", "dep"), upstream=False)
        )

    def _consumers(self, data: Sequence[tuple[str, str]]) -> list[str]:
        new: list[str] = []
        wanted = set(data)
        for path, md5, run_id in self._io(
            "SELECT io.path, io.md5, io.run_id FROM run_io io JOIN runs r ON r.run_id = io.run_id "
            "WHERE io.role='in' AND r.kind='stage' AND io.md5 IN ({})",
            wanted,
        ):
            new += self._link(
                self._old(f"data:{data_key(path, md5)}"),
                self._node("run", run_id, run_id),
                "consumed",
            )
        pairs = list(
            self._io(
                "SELECT DISTINCT path, md5, entry FROM entry_io WHERE role='dep' AND md5 IN ({})",
                wanted,
            )
        )
        covered = self._covered({entry for _, _, entry in pairs})
        for path, md5, entry in pairs:
            if entry not in covered:
                target = self._node("entry", entry, entry)
                new += self._link(self._old(f"data:{data_key(path, md5)}"), target, "consumed")
        by_md5: dict[str, list[str]] = {}
        for p, m in wanted:
            by_md5.setdefault(m, []).append(p)
        for md5, name, version, path in self._rows(
            "SELECT md5, name, version, json_extract(tags, '$.\"dvflow.model_path\"') "
            "FROM models WHERE md5 IN ({})",
            sorted(by_md5),
        ):
            for file in [p for p in by_md5[md5] if path is None or p == path]:
                model = self._node("model", f"{name}/{version}", f"{name} v{version}")
                new += self._link(
                    self._old(f"data:{data_key(file, md5)}"), model, "registered-from"
                )
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


class _Choice:
    """Which of several producers of one data version its consumers can have used.

    The producer in the same pipeline run (or the same ``dvc.lock``) first;
    else the latest run that ended before the consumer started (of stages
    from Git, the latest first committed no later than the consumer). The
    target itself shows the run that first made it, else the stage of the
    DVC file it was read from (``context``).
    """

    def __init__(
        self,
        db: sqlite3.Connection,
        graph: Graph,
        data: Iterable[str],
        context: frozenset[str] = frozenset(),
    ) -> None:
        wanted = set(data)
        self.consumers: dict[str, list[str]] = {}
        for edge in graph.edges:
            if edge.source in wanted:
                self.consumers.setdefault(edge.source, []).append(edge.target)
        ids = {t for targets in self.consumers.values() for t in targets}
        runs = sorted(t.partition(":")[2] for t in ids if t.startswith("run:"))
        entries = sorted(t.partition(":")[2] for t in ids if t.startswith("entry:"))
        self.runs = {
            row[0]: (row[1], row[2])
            for row in _chunked(
                db, "SELECT run_id, parent_id, start_time FROM runs WHERE run_id IN ({})", runs
            )
        }
        self.blobs: dict[str, set[str]] = {}
        for entry, blob in _chunked(
            db, "SELECT entry, blob FROM blob_entries WHERE entry IN ({})", entries
        ):
            self.blobs.setdefault(entry, set()).add(blob)
        self.db = db
        self.context = context

    def producers(
        self, node_id: str, runs: Sequence[tuple[Any, ...]], entries: Sequence[tuple[str, str]]
    ) -> tuple[list[tuple[str, str]], set[str]]:
        """The ``(node id, edge kind)`` producers to follow, and the ids of the others."""
        every = {f"run:{r[0]}" for r in runs} | {f"entry:{e}" for e, _ in entries}
        targets = self.consumers.get(node_id, [])
        chosen = [(f"run:{r}", "produced") for r in self._runs(runs, targets)]
        same = self._same_lock(entries, targets)
        if not targets and not chosen:
            # The target itself, made without dvflow: its own dvc.lock or .dvc
            # file says which stage made it.
            same = [(e, k) for e, k in entries if e in self.context]
        if same or not chosen:
            picked = self._committed_before(same or list(entries), targets)
            chosen = [(f"entry:{e}", _SOURCE_EDGES.get(k, "produced")) for e, k in picked]
        # A restored or up-to-date run made nothing: its produced_by link names
        # the run that did. Only runs that ran are other producers.
        idle = {f"run:{r[0]}" for r in runs if r[1] != "ran"}
        others = every - {c for c, _ in chosen} - idle
        named = [(e, k) for e, k in entries if f"entry:{e}" in others]
        return chosen, others - self._written_by(runs, named)

    def _written_by(
        self, runs: Sequence[tuple[Any, ...]], entries: Sequence[tuple[str, str]]
    ) -> set[str]:
        """The stage entries that runs of this data wrote: the same production, not another.

        ``dvflow run`` leaves its result in ``dvc.lock``; an entry of the run's
        stage with the run's outputs, committed in the commit the run is bound
        to or at or after the run started, is that result. One committed
        before it (another branch that made the same bytes) is another producer.
        """
        ids = sorted({e for e, kind in entries if kind == "stage"})
        if not runs or not ids:
            return set()
        made: dict[str, set[str]] = {}
        for run_id, md5 in _chunked(
            self.db,
            "SELECT run_id, md5 FROM run_io WHERE role='out' AND run_id IN ({})",
            sorted({r[0] for r in runs}),
        ):
            made.setdefault(run_id, set()).add(md5)
        info = {
            row[0]: row[1:]
            for row in _chunked(
                self.db,
                "SELECT run_id, stage, start_time, result_commit FROM runs WHERE run_id IN ({})",
                sorted(made),
            )
        }
        outs: dict[str, set[str]] = {}
        stages: dict[str, str] = {}
        for entry, file, name, md5 in _chunked(
            self.db,
            "SELECT e.id, e.file, e.name, io.md5 FROM entries e JOIN entry_io io "
            "ON io.entry = e.id WHERE io.role='out' AND e.id IN ({})",
            ids,
        ):
            outs.setdefault(entry, set()).add(md5)
            folder = file.rpartition("/")[0]
            stages[entry] = f"{folder}/dvc.yaml:{name}" if folder else name
        commits: dict[str, list[tuple[str, int]]] = {}
        for entry, sha, when in _chunked(
            self.db,
            "SELECT be.entry, c.sha, cm.time FROM blob_entries be JOIN changes c "
            "ON c.blob = be.blob JOIN commits cm ON cm.sha = c.sha WHERE be.entry IN ({})",
            ids,
        ):
            commits.setdefault(entry, []).append((sha, when))

        def wrote(run_id: str, entry: str) -> bool:
            stage, start, bound = info.get(run_id, (None, None, None))
            if stage != stages.get(entry) or made[run_id] != outs.get(entry):
                return False
            # Commit times are seconds, MLflow's start times milliseconds.
            return any(
                sha == bound or (start is not None and when >= start // 1000)
                for sha, when in commits.get(entry, [])
            )

        return {f"entry:{e}" for e in ids if any(wrote(r, e) for r in made)}

    def _committed_before(
        self, entries: list[tuple[str, str]], targets: Sequence[str]
    ) -> list[tuple[str, str]]:
        """Of several entries, the latest first committed no later than the consumers."""
        consumers = [t[6:] for t in targets if t.startswith("entry:")]
        if len(entries) < 2 or not consumers:
            return entries
        first = dict(
            _chunked(
                self.db,
                "SELECT be.entry, MIN(cm.time) FROM blob_entries be JOIN changes c "
                "ON c.blob = be.blob JOIN commits cm ON cm.sha = c.sha "
                "WHERE be.entry IN ({}) GROUP BY be.entry",
                sorted({*consumers, *(e for e, _ in entries)}),
            )
        )
        deadline = min(first.get(c, 0) for c in consumers)
        before = [(e, k) for e, k in entries if first.get(e, 0) <= deadline]
        if not before:
            return entries
        latest = max(first.get(e, 0) for e, _ in before)
        return [(e, k) for e, k in before if first.get(e, 0) == latest]

    def _runs(self, runs: Sequence[tuple[Any, ...]], targets: Sequence[str]) -> list[str]:
        consumers = [self.runs[t[4:]] for t in targets if t[4:] in self.runs]
        if not runs:
            return []
        parents = {parent for parent, _ in consumers if parent}
        same = [r[0] for r in runs if r[2] and r[2] in parents]
        if same:
            return same
        if not consumers:
            made = [r for r in runs if r[1] == "ran"] or list(runs)
            return [min(made, key=lambda r: (r[3] or 0, r[0]))[0]]
        found = set()
        for _, start in consumers:
            before = [r for r in runs if r[4] is not None and start and r[4] <= start]
            pool = [r for r in before if r[1] == "ran"] or before
            if pool:
                found.add(max(pool, key=lambda r: (r[4], r[0]))[0])
        return sorted(found)

    def _same_lock(
        self, entries: Sequence[tuple[str, str]], targets: Sequence[str]
    ) -> list[tuple[str, str]]:
        blobs = {b for t in targets if t.startswith("entry:") for b in self.blobs.get(t[6:], ())}
        if not blobs:
            return []
        mine = {
            entry
            for entry, blob in _chunked(
                self.db,
                "SELECT entry, blob FROM blob_entries WHERE entry IN ({})",
                sorted({e for e, _ in entries}),
            )
            if blob in blobs
        }
        return [(e, k) for e, k in entries if e in mine]


def _chunked(db: sqlite3.Connection, query: str, keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    for start in range(0, len(keys), _CHUNK):
        chunk = list(keys[start : start + _CHUNK])
        yield from db.execute(query.format(",".join("?" * len(chunk))), chunk)


def _group(ids: Iterable[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for node_id in ids:
        kind, _, key = node_id.partition(":")
        groups.setdefault(kind, []).append(key)
    return groups
