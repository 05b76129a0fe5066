"""Unseeded randomness: new bytes every run; the score moves by at most 'spread'."""

import json
import random
from pathlib import Path

import yaml

spread = yaml.safe_load(Path("params.yaml").read_text())["noisy"]["spread"]
# Unseeded on purpose: this is the randomness verify --rebuild must catch.
Path("noisy.bin").write_bytes(random.randbytes(64))  # noqa: S311
Path("noisy.json").write_text(json.dumps({"score": 0.5 + random.random() * spread}))  # noqa: S311
