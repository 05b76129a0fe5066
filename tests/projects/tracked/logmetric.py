"""An unchanged user script that logs to MLflow by hand."""

from pathlib import Path

import mlflow

with mlflow.start_run():
    mlflow.log_metric("hand_metric", 42.0)
    mlflow.set_tag("script", "logmetric")
Path("out1.txt").write_text("one\n")
