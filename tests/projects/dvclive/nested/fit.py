"""DVCLive's files under results/train, and a timestamp file beside them."""

import json
import time
from pathlib import Path

live = Path("results/train")
(live / "plots" / "metrics" / "eval").mkdir(parents=True, exist_ok=True)
rows = ["timestamp\tstep\tacc"]
for step, acc in enumerate([0.5, 0.7, 0.8]):
    rows.append(f"{int(time.time() * 1000)}\t{step}\t{acc}")
(live / "plots" / "metrics" / "eval" / "acc.tsv").write_text("\n".join(rows) + "\n")
(live / "metrics.json").write_text(json.dumps({"eval": {"acc": 0.8}, "step": 2}))
(live / "trained_at.txt").write_text(f"{time.time()}\n")
Path("models").mkdir(exist_ok=True)
Path("models/model.txt").write_text("weights 0.8\n")
