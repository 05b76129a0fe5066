from pathlib import Path

# Runs in eval/ (wdir): every path is written from there.
model = Path("../models/model.bin").read_text()
Path("../results").mkdir(exist_ok=True)
Path("../results/score.txt").write_text(f"{len(model)}\n")
