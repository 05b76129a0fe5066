"""Train a random forest; an ordinary script that logs to MLflow itself.

Run under 'dvflow run', mlflow.start_run() joins the stage's run: dvflow sets
MLFLOW_TRACKING_URI, MLFLOW_EXPERIMENT_ID and MLFLOW_RUN_ID for the command.
"""

import logging
import pickle
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
import sklearn
import yaml
from sklearn.ensemble import RandomForestClassifier

params = yaml.safe_load(Path("params.yaml").read_text())["train"]
train = pd.read_csv("data/prepared/train.csv")
features, target = train.drop(columns="target"), train["target"]
model = RandomForestClassifier(
    n_estimators=params["n_estimators"],
    max_depth=params["max_depth"],
    random_state=params["seed"],
).fit(features, target)

Path("models").mkdir(exist_ok=True)
with open("models/model.pkl", "wb") as f:
    pickle.dump(model, f)

# The demo trusts its own pickle; keep MLflow's warning about that out of the log.
logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)

with mlflow.start_run():
    mlflow.log_metric("train_accuracy", model.score(features, target))
    # Explicit requirements and cloudpickle: skops rejects tree models by
    # default, and inferring requirements costs seconds per model.
    mlflow.sklearn.log_model(
        model,
        name="model",
        pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
    )
print(f"trained a forest of {params['n_estimators']} trees")
