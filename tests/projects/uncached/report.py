import json
from pathlib import Path

stats = json.loads(Path("stats.json").read_text())
Path("report.txt").write_text(f"mean {stats['mean']} over {stats['n']}\n")
