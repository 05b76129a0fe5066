"""Deterministic: the same bytes every time."""

from pathlib import Path

import yaml

n = yaml.safe_load(Path("params.yaml").read_text())["steady"]["n"]
Path("steady.txt").write_text("".join(f"line {i}\n" for i in range(n)))
