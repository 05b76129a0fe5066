import json
from pathlib import Path

import yaml

params = yaml.safe_load(Path("params.yaml").read_text())["train"]
numbers = [int(x) for x in Path("data/clean/scaled.txt").read_text().split()]
weight = sum(numbers) * params["lr"] * params["epochs"]
Path("model.txt").write_text(f"weight={weight}\n")
Path("metrics.json").write_text(
    json.dumps({"loss": round(1 / (1 + weight), 6), "eval": {"acc": 0.5, "n": len(numbers)}})
)
Path("plot.csv").write_text("step,loss\n" + "".join(f"{i},{1 / (i + 1)}\n" for i in range(3)))
