"""Runs in wdir 'src': every path is relative to it, as in real wdir stages."""

import sys
from pathlib import Path

dataset = sys.argv[1]
weight = int(Path("../model/clf-model/weights.txt").read_text())
Path("../reports").mkdir(exist_ok=True)
Path(f"../reports/{dataset}.txt").write_text(f"{dataset} score={weight % 97}\n")
