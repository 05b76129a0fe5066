"""An unchanged user script that relies on mlflow.autolog()."""

from pathlib import Path

import mlflow
from sklearn.linear_model import LinearRegression

mlflow.autolog(log_models=False, log_datasets=False)
LinearRegression().fit([[0.0], [1.0], [2.0]], [0.0, 1.0, 2.0])
Path("out2.txt").write_text("two\n")
