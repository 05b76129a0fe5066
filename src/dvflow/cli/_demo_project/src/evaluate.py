"""Score the model on the test set; write metrics.json and a feature-importance plot."""

import json
import pickle
from pathlib import Path

import pandas as pd
from sklearn.metrics import accuracy_score, f1_score

test = pd.read_csv("data/prepared/test.csv")
features, target = test.drop(columns="target"), test["target"]
with open("models/model.pkl", "rb") as f:
    model = pickle.load(f)
predicted = model.predict(features)

metrics = {
    "test": {
        "accuracy": round(float(accuracy_score(target, predicted)), 4),
        "f1_macro": round(float(f1_score(target, predicted, average="macro")), 4),
    }
}
Path("metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
Path("plots").mkdir(exist_ok=True)
pd.DataFrame({"feature": features.columns, "importance": model.feature_importances_}).to_csv(
    "plots/importance.csv", index=False
)
print(f"test accuracy {metrics['test']['accuracy']}")
