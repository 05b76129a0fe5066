"""A stage that also logs its model through MLflow itself (a pyfunc model)."""

from pathlib import Path

import mlflow
import mlflow.pyfunc


class Echo(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    def predict(self, context, model_input):  # type: ignore[no-untyped-def]
        return model_input


Path("model.txt").write_text("echo model\n")
with mlflow.start_run():
    mlflow.pyfunc.log_model(name="model", python_model=Echo(), pip_requirements=["mlflow"])
