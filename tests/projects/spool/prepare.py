"""Clean the raw lines. With SPOOL_GATE set, wait at the gate (the tests stop a server then)."""

import os
import time
from pathlib import Path

import yaml

gate = os.environ.get("SPOOL_GATE")
if gate:
    Path(gate + ".started").touch()
    deadline = time.monotonic() + 300
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
params = yaml.safe_load(Path("params.yaml").read_text())["prepare"]
lines = Path("data/raw.txt").read_text().split()
if params["upper"]:
    lines = [line.upper() for line in lines]
Path("clean.txt").write_text("\n".join(lines) + "\n")
