"""Write what DVCLive writes (metrics.json, a step history per metric), in plain Python.

The history's timestamp column changes on every run, as DVCLive's does: the
dvclive directory then differs between two runs although the model and the
metrics are identical.
"""

import json
import time
from pathlib import Path

import yaml

params = yaml.safe_load(Path("params.yaml").read_text())["train"]
epochs, lr = int(params["epochs"]), float(params["lr"])
live = Path("dvclive")
history = live / "plots" / "metrics" / "train"
history.mkdir(parents=True, exist_ok=True)
rows, loss = ["timestamp\tstep\tloss"], 1.0
for step in range(epochs):
    loss = round(loss * (1 - lr), 6)
    rows.append(f"{int(time.time() * 1000)}\t{step}\t{loss}")
(history / "loss.tsv").write_text("\n".join(rows) + "\n")
(live / "metrics.json").write_text(json.dumps({"train": {"loss": loss}, "step": epochs - 1}))
Path("model.pkl").write_text(f"weights {lr} {epochs}\n")
