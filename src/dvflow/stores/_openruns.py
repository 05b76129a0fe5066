"""The journal of open runs: each MLflow run a ``dvflow run`` opened and has not ended yet.

Kept in ``.dvflow/open-runs.json`` so the next run can end what a killed one
left open (``_leftover``), and written by the spool as well as the store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

OPEN_RUNS = Path(".dvflow") / "open-runs.json"


class OpenRuns:
    """The runs this dvflow run has opened and not ended yet, kept on disk."""

    def __init__(self, root: Path, ids: list[str] | None = None) -> None:
        """``ids``, or what is noted already: runs a killed run left on a store
        that did not answer stay noted beside this run's own."""
        self.path = root / OPEN_RUNS
        self.ids: list[str] = list(ids) if ids is not None else _noted(self.path)

    def opened(self, run_id: str) -> None:
        self.ids.append(run_id)
        self.save()

    def ended(self, run_id: str) -> None:
        if run_id in self.ids:
            self.ids.remove(run_id)
            self.save()

    def save(self) -> None:
        if not self.ids:
            self.path.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(self.ids), encoding="utf-8")
        os.replace(partial, self.path)


def _noted(path: Path) -> list[str]:
    try:
        noted = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [i for i in noted if isinstance(i, str)] if isinstance(noted, list) else []
