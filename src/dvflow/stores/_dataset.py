"""DVC data as native MLflow datasets.

``DvcDatasetSource`` is registered on MLflow's ``mlflow.dataset_source`` entry
point, so ``mlflow.data.get_source(run.inputs.dataset_inputs[0])`` gives back
a dvflow object. The dataset digest is the DVC md5 (``.dir`` included): then
``search_runs(filter_string="dataset.digest = '<md5>'")`` finds consumers
server-side. This module imports MLflow; import it lazily.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from mlflow.data.dataset import Dataset
from mlflow.data.dataset_source import DatasetSource

from dvflow.core._dvcfiles import Pointer

SOURCE_TYPE = "dvc"


class DvcDatasetSource(DatasetSource):
    """A ``dvc://`` pointer: repo, revision, path, md5 and remote object URI."""

    def __init__(
        self,
        repo: str,
        path: str,
        rev: str | None = None,
        md5: str | None = None,
        remote_uri: str | None = None,
    ) -> None:
        self.repo, self.path, self.rev = repo, path, rev
        self.md5, self.remote_uri = md5, remote_uri

    @property
    def uri(self) -> str:
        """``dvc:///PATH?repo=…&rev=…&md5=…&remote=…``.

        The path is the URI's path, as in a model's ``dvc:///PATH@MD5``
        source; the repository (itself a URL or a local path) is a query
        value, so no ``//`` joins the two.
        """
        query = {
            k: v
            for k, v in (
                ("repo", self.repo),
                ("rev", self.rev),
                ("md5", self.md5),
                ("remote", self.remote_uri),
            )
            if v
        }
        return f"dvc:///{quote(self.path.lstrip('/'))}?{urlencode(query)}"

    @staticmethod
    def _get_source_type() -> str:
        return SOURCE_TYPE

    def load(self, dst_path: str | None = None) -> str:
        """Download this exact version with DVC; returns the local path."""
        from dvc.repo import Repo

        out = Path(dst_path or ".") / Path(self.path).name
        Repo.get(self.repo, self.path, out=str(out), rev=self.rev)
        return str(out)

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return isinstance(raw_source, str) and raw_source.startswith("dvc://")

    @classmethod
    def _resolve(cls, raw_source: Any) -> DvcDatasetSource:
        parts = urlsplit(str(raw_source))
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if "repo" in query:
            repo, path = query["repo"], unquote(parts.path.lstrip("/"))
        else:
            # Sources logged before: dvc://REPO//PATH?rev=… (a URL repo has '//' too).
            repo, _, quoted = (parts.netloc + parts.path).rpartition("//")
            path = unquote(quoted)
        return cls(repo, path, query.get("rev"), query.get("md5"), query.get("remote"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "repo": self.repo,
            "path": self.path,
            "rev": self.rev,
            "md5": self.md5,
            "remote_uri": self.remote_uri,
        }

    @classmethod
    def from_dict(cls, source_dict: dict[Any, Any]) -> DvcDatasetSource:
        return cls(
            repo=source_dict["repo"],
            path=source_dict["path"],
            rev=source_dict.get("rev"),
            md5=source_dict.get("md5"),
            remote_uri=source_dict.get("remote_uri"),
        )


class DvcDataset(Dataset):
    """One DVC-tracked path at one md5."""

    def __init__(self, pointer: Pointer, source: DvcDatasetSource) -> None:
        self._pointer = pointer
        super().__init__(source=source, name=pointer.path, digest=pointer.md5 or "unknown")

    def _compute_digest(self) -> str:
        return self._pointer.md5 or "unknown"

    def to_dict(self) -> dict[str, str]:
        base: dict[str, str] = super().to_dict()
        base["profile"] = json.dumps(self.profile)
        return base

    @property
    def profile(self) -> dict[str, Any]:
        return {"size": self._pointer.size, "nfiles": self._pointer.nfiles}

    @property
    def schema(self) -> None:
        return None


def dataset_for(pointer: Pointer, repo: str, rev: str | None) -> DvcDataset:
    source = DvcDatasetSource(repo, pointer.path, rev, pointer.md5, pointer.remote_uri)
    return DvcDataset(pointer, source)
