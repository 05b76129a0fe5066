import json
from pathlib import Path

text = Path("../data/prep.txt").read_text()
Path("w.txt").write_text(text.upper())
Path("u.txt").write_text("not cached\n")
Path("train.json").write_text(json.dumps({"acc": 0.99}))
Path("test.json").write_text(json.dumps({"acc": 0.71}))
