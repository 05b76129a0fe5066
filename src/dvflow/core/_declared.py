"""Metrics and plots a stage owns, from its own ``metrics:``/``plots:`` and the top level.

DVC 3 (and DVCLive, which writes them) declares metrics and plots at the top
level of ``dvc.yaml``, usually inside a stage's output directory
(``dvclive/metrics.json`` inside output ``dvclive``). Such a file belongs to
the stage whose output (file or directory) contains it. Every path here is
repository-relative and normalised (no ``//``, no ``./``).

A DVCLive step history, ``<dir>/plots/metrics/<name>.tsv`` (tab-separated,
with ``step`` and ``timestamp`` columns), becomes an MLflow metric history.
Its key is the one its last value has in DVCLive's ``<dir>/metrics.json``
once flattened: ``train/loss.tsv`` is ``train.loss``. So the history and the
final value are one MLflow metric, and ``diff`` and ``verify --rebuild``
compare that final value.
"""

from __future__ import annotations

import csv
import math
import posixpath
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from ._dvcfiles import read_metrics_file, repo_path
from ._exceptions import InvalidFileError
from ._mlnames import mlflow_key

# Where DVCLive writes its step histories, under its directory.
_HISTORY_DIR = "plots/metrics"


class MetricPoint(NamedTuple):
    """One value of one metric at one step, as MLflow logs it."""

    key: str
    value: float
    timestamp_ms: int
    step: int


def normalize(path: str, base: str = "") -> str:
    """``path`` (relative to the folder ``base``) as a repository-relative path.

    DVC writes templated paths as ``out//x`` and users write ``./x``; both
    must compare equal to ``out/x`` and ``x``. ``""`` for the root itself.
    """
    joined = repo_path("" if base == "." else base, path)
    return "" if joined == "." else joined


def inside(path: str, outs: Iterable[str]) -> bool:
    """Is ``path`` one of ``outs`` or a file under one of them?"""
    return any(path == out or path.startswith(out.rstrip("/") + "/") for out in outs if out)


def owned(declared: Iterable[str], outs: Iterable[str]) -> list[str]:
    """The top-level ``declared`` paths that the stage with outputs ``outs`` owns."""
    outs = [normalize(o) for o in outs]
    return sorted({p for p in (normalize(d) for d in declared) if p and inside(p, outs)})


def files_under(root: Path, paths: Iterable[str]) -> list[str]:
    """Every file ``paths`` name: a file itself, a directory all files below it."""
    found: set[str] = set()
    for path in paths:
        full = root / path
        if full.is_file():
            found.add(path)
        elif full.is_dir():
            found.update(
                f"{path}/{p.relative_to(full).as_posix()}" for p in full.rglob("*") if p.is_file()
            )
    return sorted(found)


def read_metrics(
    root: Path,
    files: Iterable[str],
    folder: str = "",
    skip: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """The numeric values of metrics ``files``; with several, keys are ``file:key``.

    Otherwise ``train.json`` and ``test.json`` that both say ``acc`` would
    overwrite each other. ``folder``: where ``root`` is in the Git repository
    (a ``dvc init --subdir`` project), so ``file`` is named from the Git root
    as records name paths. ``skip``: given, a file that cannot be read (broken,
    or refused as an alias bomb) is left out and ``skip`` told why; else it raises.
    """
    present = sorted({f for f in files if (root / f).is_file()})
    metrics: dict[str, float] = {}
    for name in present:
        prefix = f"{normalize(name, folder)}:" if len(present) > 1 else ""
        try:
            values = read_metrics_file(root / name)
        except InvalidFileError as exc:
            if skip is None:
                raise
            skip(f"metrics file {normalize(name, folder)} not logged: {exc.problem}")
            continue
        for key, value in values.items():
            metrics[prefix + key] = value
    return metrics


def history_key(tsv: str, metric_files: Sequence[str], folder: str = "") -> str | None:
    """The metric key of a DVCLive history file; None if ``tsv`` is not one.

    ``dvclive/plots/metrics/train/loss.tsv`` is ``train.loss``, the key the
    last value has in ``dvclive/metrics.json``; prefixed ``file:`` as that
    file's keys are when the stage has several metrics files.
    """
    marker = f"/{_HISTORY_DIR}/"
    padded = "/" + tsv
    if not tsv.endswith(".tsv") or marker not in padded:
        return None
    base, _, name = padded.rpartition(marker)
    key = name.removesuffix(".tsv").replace("/", ".")
    present = sorted(set(metric_files))
    if len(present) > 1:
        sibling = normalize(posixpath.join(base.lstrip("/"), "metrics.json"))
        if sibling in present:
            return f"{normalize(sibling, folder)}:{key}"
    return key


def read_history(path: Path, key: str, now_ms: int) -> list[MetricPoint]:
    """The points of one DVCLive ``.tsv``; rows without a finite number are skipped.

    The value column is the one named like the file (DVCLive's layout), or
    else the only column besides ``step`` and ``timestamp``.
    """
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    if not rows:
        return []
    columns = [c for c in rows[0] if c not in ("step", "timestamp")]
    column = path.stem if path.stem in rows[0] else (columns[0] if len(columns) == 1 else None)
    if column is None:
        return []
    points = []
    for index, row in enumerate(rows):
        value = _number(row.get(column))
        if value is None or not math.isfinite(value):
            continue
        step = _number(row.get("step"))
        stamp = _number(row.get("timestamp"))
        points.append(
            MetricPoint(
                key,
                value,
                int(stamp) if stamp is not None else now_ms,
                int(step) if step is not None else index,
            )
        )
    return points


def histories(
    root: Path,
    plot_files: Iterable[str],
    metric_files: Sequence[str],
    now_ms: int,
    folder: str = "",
) -> list[MetricPoint]:
    """Every DVCLive history among ``plot_files``, as metric points."""
    present = [f for f in metric_files if (root / f).is_file()]  # as read_metrics counts
    points: list[MetricPoint] = []
    for tsv in sorted(set(plot_files)):
        key = history_key(tsv, present, folder)
        if key is not None:
            points += read_history(root / tsv, key, now_ms)
    return points


def metric_points(
    final: Mapping[str, float], history: Sequence[MetricPoint], now_ms: int
) -> list[MetricPoint]:
    """What to log: each history, then each final value not already its last point.

    A final value that ends its history is not logged again (a second point
    at step 0 would break the chart); one that differs is logged at the last
    step, later, so MLflow shows it as the metric's value. Keys MLflow would
    refuse (``acc@5``) are logged with ``_`` for the characters it refuses.
    """
    last: dict[str, MetricPoint] = {}
    for point in history:
        if point.key not in last or point.step >= last[point.key].step:
            last[point.key] = point
    points = list(history)
    for key, value in sorted(final.items()):
        end = last.get(key)
        if end is None:
            points.append(MetricPoint(key, value, now_ms, 0))
        elif not math.isclose(end.value, value, rel_tol=1e-12, abs_tol=0.0):
            points.append(MetricPoint(key, value, max(now_ms, end.timestamp_ms + 1), end.step))
    return [point._replace(key=mlflow_key(point.key)) for point in points]


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def declared_now(root: Path, dvcfile: str, section: str) -> frozenset[str]:
    """The literal top-level ``metrics:`` or ``plots:`` paths ``dvcfile`` holds now.

    DVCLive adds its own entries to dvc.yaml while the first run of a stage
    goes on, after the run was planned; re-read then, they are that stage's
    too. Templated entries are left to DVC's reading at plan time; a file that
    no longer parses adds nothing.
    """
    from ._dvcfiles import declared_paths
    from ._yaml import load_yaml_file

    path = root / dvcfile
    try:
        data = load_yaml_file(path) if path.is_file() else None
    except InvalidFileError:
        return frozenset()
    entries = data.get(section) if isinstance(data, dict) else None
    folder = posixpath.dirname(dvcfile)
    return frozenset(normalize(p, folder) for p in declared_paths(entries) if "${" not in p)
