import json
from pathlib import Path

import yaml

scale = yaml.safe_load(Path("params.yaml").read_text())["measure"]["scale"]
Path("stats.json").write_text(json.dumps({"mean": 1.5 * scale, "n": 10}) + "\n")
