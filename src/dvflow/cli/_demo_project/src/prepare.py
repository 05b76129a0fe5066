"""Split the raw wine data into train and test sets."""

from pathlib import Path

import pandas as pd
import yaml
from sklearn.model_selection import train_test_split

params = yaml.safe_load(Path("params.yaml").read_text())["prepare"]
raw = pd.read_csv("data/raw.csv")
train, test = train_test_split(
    raw, test_size=params["test_size"], random_state=params["seed"], stratify=raw["target"]
)
out = Path("data/prepared")
out.mkdir(parents=True, exist_ok=True)
train.to_csv(out / "train.csv", index=False)
test.to_csv(out / "test.csv", index=False)
print(f"prepared {len(train)} training and {len(test)} test rows")
