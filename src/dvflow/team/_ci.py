"""The CI workflow ``dvflow init --ci`` writes: check and verify on every push.

Credentials come from the repository's secrets by name; the file itself
holds none, and nothing from the local configuration is copied into it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

WORKFLOW = Path(".github") / "workflows" / "dvflow.yml"

_HEADER = """\
# Written by 'dvflow init --ci'. Every credential comes from the repository's
# secrets (Settings > Secrets and variables > Actions); none is in this file.
# The DVC remote must be one CI can reach (S3, GCS, Azure...), not a local folder.
name: dvflow

on:
  push:
    branches: [main, master]
    tags: ["v*"]
  pull_request:

jobs:
  check:
    runs-on: ubuntu-latest
    env:
      MLFLOW_TRACKING_URI: ${{ secrets.MLFLOW_TRACKING_URI }}
      MLFLOW_TRACKING_USERNAME: ${{ secrets.MLFLOW_TRACKING_USERNAME }}
      MLFLOW_TRACKING_PASSWORD: ${{ secrets.MLFLOW_TRACKING_PASSWORD }}
      AWS_ACCESS_KEY_ID: ${{ secrets.AWS_ACCESS_KEY_ID }}
      AWS_SECRET_ACCESS_KEY: ${{ secrets.AWS_SECRET_ACCESS_KEY }}
      AZURE_STORAGE_CONNECTION_STRING: ${{ secrets.AZURE_STORAGE_CONNECTION_STRING }}
      GOOGLE_APPLICATION_CREDENTIALS_JSON: ${{ secrets.GOOGLE_APPLICATION_CREDENTIALS_JSON }}
    steps:
      - uses: actions/checkout@v4
        with:
          fetch-depth: 0  # lineage reads history; verify checks commits are on a remote ref
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install
        run: |
          if [ -f requirements.lock ]; then pip install -r requirements.lock; fi
          if [ -f requirements.txt ]; then pip install -r requirements.txt; fi
          pip install "dvflow=={version}"
      - name: Google credentials file (only when that secret is set)
        if: env.GOOGLE_APPLICATION_CREDENTIALS_JSON != ''
        run: |
          printf '%s' "$GOOGLE_APPLICATION_CREDENTIALS_JSON" > "$RUNNER_TEMP/gcp.json"
          echo "GOOGLE_APPLICATION_CREDENTIALS=$RUNNER_TEMP/gcp.json" >> "$GITHUB_ENV"
      - name: Pull the data
        run: dvc pull
      - name: dvflow check (exit 10-13 name the drift)
        run: dvflow check --summary "$GITHUB_STEP_SUMMARY"
"""


def workflow(models: Iterable[str]) -> str:
    """The workflow text; ``models`` are the registered names to verify."""
    from dvflow.core._version import __version__

    header = _HEADER.replace("{version}", __version__)
    names = sorted(models)
    if not names:
        return header + (
            "      # Verify your models once dvc.yaml declares them in 'artifacts:':\n"
            "      # - name: Verify the production models\n"
            "      #   run: dvflow verify models:/NAME@production\n"
        )
    lines = "".join(f"          dvflow verify models:/{name}@production\n" for name in names)
    return header + "      - name: Verify the production models\n        run: |\n" + lines
