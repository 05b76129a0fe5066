"""Write one feature file per input: a directory output (a .dir object)."""

from pathlib import Path

import yaml

n = yaml.safe_load(Path("params.yaml").read_text())["featurize"]["n"]
out = Path("features")
out.mkdir(exist_ok=True)
for name in ("raw.txt", "words.txt"):
    lines = Path("data", name).read_text().splitlines()
    (out / f"{name}.feat").write_text("\n".join(line[:n] for line in lines) + "\n")
