"""Reading DVC's files ourselves: dvc.yaml, dvc.lock, params and metrics.

Parsing here, not through DVC, keeps errors precise (file, line, column) and
keeps DVC's import cost off the paths that only need facts.
"""

from __future__ import annotations

import hashlib
import json
import math
import posixpath
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._exceptions import InvalidFileError, NoPipelineError
from ._yaml import load_yaml_file

PIPELINE_FILE = "dvc.yaml"
LOCK_FILE = "dvc.lock"
PARAMS_FILE = "params.yaml"


def read_pipeline(root: Path) -> dict[str, Any]:
    """Parse and shape-check ``dvc.yaml`` at ``root``."""
    path = root / PIPELINE_FILE
    if not path.exists():
        raise NoPipelineError(root)
    data = load_yaml_file(path)
    if not isinstance(data, dict):
        raise InvalidFileError(path, "expected a mapping with a 'stages' section")
    stages = data.get("stages")
    if not isinstance(stages, dict) or not stages:
        raise InvalidFileError(path, "no stages defined under 'stages:'")
    for name, stage in stages.items():
        if not isinstance(stage, dict):
            raise InvalidFileError(path, f"stage '{name}' must be a mapping")
    return data


def model_artifacts(root: Path, dvcfile: str) -> dict[str, str]:
    """``{name: path}`` of the ``artifacts:`` of ``type: model`` in one ``dvc.yaml``.

    Paths are made relative to the repository root, as outputs are.
    """
    path = root / dvcfile
    data = load_yaml_file(path) if path.is_file() else None
    declared = data.get("artifacts") if isinstance(data, dict) else None
    if not isinstance(declared, dict):
        return {}
    base = posixpath.dirname(dvcfile)
    return {
        str(name): repo_path(base, str(spec["path"]))
        for name, spec in declared.items()
        if isinstance(spec, dict) and spec.get("type") == "model" and spec.get("path")
    }


def read_lock(path: Path) -> dict[str, Any]:
    """Parse a ``dvc.lock``; a missing file is an empty lock."""
    if not path.exists():
        return {}
    data = load_yaml_file(path)
    if data is None:
        return {}
    if not isinstance(data, dict) or not isinstance(data.get("stages", {}), dict):
        raise InvalidFileError(path, "expected 'schema' and a 'stages' mapping")
    stages: dict[str, Any] = data.get("stages") or {}
    return stages


def check_params_files(root: Path, files: Iterable[str] = (PARAMS_FILE,)) -> None:
    """Fail early, with a line number, on a broken YAML params file."""
    for name in files:
        path = root / name
        if path.suffix in {".yaml", ".yml"} and path.exists():
            data = load_yaml_file(path)
            if data is not None and not isinstance(data, dict):
                raise InvalidFileError(path, "expected a mapping of parameters")


@dataclass(frozen=True)
class Pointer:
    """Where one version of one DVC-tracked path lives."""

    path: str
    md5: str | None
    size: int | None = None
    nfiles: int | None = None
    cache_path: str | None = None
    remote_uri: str | None = None
    version_ids: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "md5": self.md5,
            "size": self.size,
            "nfiles": self.nfiles,
            "cache_path": self.cache_path,
            "remote_uri": self.remote_uri,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pointer:
        return cls(
            path=str(data["path"]),
            md5=data.get("md5"),
            size=data.get("size"),
            nfiles=data.get("nfiles"),
            cache_path=data.get("cache_path"),
            remote_uri=data.get("remote_uri"),
        )


def repo_path(base: str, raw: str) -> str:
    """``raw``, a path as a DVC file wrote it relative to folder ``base``, normalised.

    DVC keeps templated paths as written: ``${dir}/x`` with ``dir: out/`` is
    ``out//x`` in dvc.lock, and ``./x`` stays ``./x`` (DESIGN trap 11). Every
    path read from dvc.yaml, dvc.lock or a .dvc file goes through here, so
    records, keys and queries compare one spelling. URLs (external
    dependencies) are left alone: their ``//`` is meaningful.
    """
    if "://" in raw:
        return raw
    joined = posixpath.join(base, raw) if base else raw
    return posixpath.normpath(joined) if joined else ""


def object_suffix(md5: str) -> str:
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def pointer_from_entry(
    entry: Mapping[str, Any],
    *,
    wdir: str = "",
    cache_dir: str | None = None,
    remote_url: str | None = None,
    versioned: bool = False,
) -> Pointer:
    """A Pointer from one ``deps``/``outs`` entry of ``dvc.lock`` or a ``.dvc`` file.

    ``cache_dir`` is DVC's object folder (``.dvc/cache/files/md5``); pass
    neither it nor ``remote_url`` for a path DVC does not store (code in git).

    Version-aware remotes write a directory as per-file ``files:`` with
    ``version_id``s and no top-level md5 (DESIGN trap 6): its ``.dir`` md5 is
    recomputed from the listing, as DVC does. Such a remote (``versioned``)
    keeps objects at their work-tree paths, not by md5: the pointer's
    ``remote_uri`` is that location, and the version ids ``dvc push`` wrote
    into the entry say which version. A pointer with version ids for any
    other remote gets no ``remote_uri``.
    """
    path = repo_path(wdir, str(entry.get("path", "")))
    md5 = entry.get("md5")
    md5 = str(md5) if md5 else None
    files = entry.get("files")
    size = entry.get("size")
    nfiles = entry.get("nfiles")
    if md5 is None and isinstance(files, list):
        md5 = dir_md5(files)
        size = size if size is not None else _sum_sizes(files)
        nfiles = nfiles if nfiles is not None else len(files)
    versions = (
        sum(1 for f in files if isinstance(f, dict) and _has_version(f))
        if isinstance(files, list)
        else int(_has_version(entry))
    )
    if not (remote_url and md5):
        remote_uri = None
    elif versioned:
        remote_uri = f"{remote_url.rstrip('/')}/{path}"
    else:
        remote_uri = None if versions else f"{remote_url.rstrip('/')}/{object_suffix(md5)}"
    return Pointer(
        path=path,
        md5=md5,
        size=int(size) if isinstance(size, int) else None,
        nfiles=int(nfiles) if isinstance(nfiles, int) else None,
        cache_path=f"{cache_dir.rstrip('/')}/{md5[:2]}/{md5[2:]}" if cache_dir and md5 else None,
        remote_uri=remote_uri,
        version_ids=versions,
    )


def dir_md5(files: Sequence[Any]) -> str | None:
    """The ``.dir`` md5 DVC gives a directory listed file by file.

    DVC hashes the JSON of the ``{md5, relpath}`` pairs sorted by relpath
    (dvc-data's ``Tree.digest``). None when a file lacks either.
    """
    listing = []
    for item in files:
        if not isinstance(item, Mapping) or not item.get("md5") or not item.get("relpath"):
            return None
        listing.append({"md5": str(item["md5"]), "relpath": str(item["relpath"])})
    listing.sort(key=lambda e: e["relpath"])
    text = json.dumps(listing, sort_keys=True)
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest() + ".dir"


@dataclass
class CloudVersions:
    """Where a version-aware remote keeps each file, as DVC's pointer files say.

    Such a remote stores a file at its work-tree path; ``dvc push`` writes the
    object's ``version_id`` into ``dvc.lock`` or the ``.dvc`` file (DESIGN
    trap 6). ``files``: ``{md5: {(path, version_id)}}``; ``dirs``:
    ``{dir md5: {relpath: md5}}``.
    """

    remote: str
    files: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    dirs: dict[str, dict[str, str]] = field(default_factory=dict)

    def add_document(self, file: str, doc: Any) -> None:
        """Every dep and out of one parsed ``dvc.lock`` or ``.dvc`` file at ``file``."""
        if not isinstance(doc, Mapping):
            return
        base = posixpath.dirname(file)
        if posixpath.basename(file) == LOCK_FILE:
            stages = doc.get("stages")
            bodies = list(stages.values()) if isinstance(stages, Mapping) else []
        else:
            bodies = [doc]
        for body in bodies:
            if not isinstance(body, Mapping):
                continue
            for section in ("deps", "outs"):
                for entry in body.get(section) or []:
                    if isinstance(entry, Mapping) and entry.get("path"):
                        self._add_entry(entry, base)

    def _add_entry(self, entry: Mapping[str, Any], base: str) -> None:
        path = repo_path(base, str(entry["path"]))
        files = entry.get("files")
        if isinstance(files, list):
            md5 = entry.get("md5") or dir_md5(files)
            listing = {}
            for item in files:
                if isinstance(item, Mapping) and item.get("md5") and item.get("relpath"):
                    listing[str(item["relpath"])] = str(item["md5"])
                    self._add_file(item, f"{path}/{item['relpath']}")
            if md5:
                self.dirs[str(md5)] = listing
        elif entry.get("md5"):
            self._add_file(entry, path)

    def _add_file(self, entry: Mapping[str, Any], path: str) -> None:
        cloud = entry.get("cloud")
        version = cloud.get(self.remote) if isinstance(cloud, Mapping) else None
        if isinstance(version, Mapping) and version.get("version_id"):
            found = (path, str(version["version_id"]))
            self.files.setdefault(str(entry["md5"]), set()).add(found)


def outputs_key(outputs: Sequence[Pointer]) -> str | None:
    """One id for a stage's exact set of output versions (None if any md5 is unknown).

    Runs are tagged with it, so the run that first produced some outputs,
    and the commit whose dvc.lock holds them, can be matched later.
    """
    if not outputs or any(p.md5 is None for p in outputs):
        return None
    # Normalised, so that 'model//x' and 'model/x' (one path) give one key.
    text = "\n".join(sorted(f"{repo_path('', p.path)}\0{p.md5}" for p in outputs))
    return hashlib.sha256(text.encode()).hexdigest()[:40]


def _sum_sizes(files: list[Any]) -> int | None:
    sizes = [f.get("size") for f in files if isinstance(f, dict)]
    return sum(s for s in sizes if isinstance(s, int)) if sizes else None


def _has_version(entry: Mapping[str, Any]) -> bool:
    cloud = entry.get("cloud")
    return isinstance(cloud, dict) and any(
        isinstance(v, dict) and v.get("version_id") for v in cloud.values()
    )


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted keys: {'a': {'b': 1}} -> {'a.b': 1}."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = value
    return flat


def params_from_lock(entry: Mapping[str, Any]) -> dict[str, str]:
    """The params a stage used, as MLflow-ready strings.

    Keys from ``params.yaml`` keep their dotted name; other files are
    prefixed with the file name (``other.yaml:lr``).
    """
    result: dict[str, str] = {}
    params = entry.get("params") or {}
    if not isinstance(params, dict):
        return result
    for file_name, values in sorted(params.items()):
        if not isinstance(values, dict):
            continue
        prefix = "" if file_name == PARAMS_FILE else f"{file_name}:"
        for key, value in flatten(values).items():
            text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            result[prefix + key] = text
    return result


def read_metrics_file(path: Path) -> dict[str, float]:
    """Numeric values of a JSON, YAML or TOML metrics file, keys flattened."""
    try:
        if path.suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        elif path.suffix == ".toml":
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        else:
            data = load_yaml_file(path)
    except (OSError, ValueError, RecursionError) as exc:
        raise InvalidFileError(path, f"unreadable metrics file: {exc}") from exc
    if not isinstance(data, Mapping):
        return {}
    try:
        flat = flatten(data)
    except RecursionError:
        raise InvalidFileError(path, "metrics nested too deeply") from None
    metrics: dict[str, float] = {}
    for key, value in flat.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if math.isfinite(float(value)):
            metrics[key] = float(value)
    return metrics


def declared_paths(entries: Any) -> list[str]:
    """Paths named by a ``metrics:``/``plots:`` list of strings or one-key mappings."""
    paths: list[str] = []
    if not isinstance(entries, list):
        return paths
    for item in entries:
        if isinstance(item, str):
            paths.append(repo_path("", item))
        elif isinstance(item, dict):
            for key, conf in item.items():
                paths.append(repo_path("", str(key)))
                y = conf.get("y") if isinstance(conf, dict) else None
                if isinstance(y, dict):
                    paths.extend(repo_path("", str(k)) for k in y)
    return paths
