"""python step.py OUT [IN...]: OUT holds its name, the params file and its inputs."""

import sys
from pathlib import Path

out, inputs = sys.argv[1], sys.argv[2:]
parts = [out, Path("params.yaml").read_text()]
parts += [Path(path).read_text() for path in inputs]
Path(out).write_text("\n".join(parts))
