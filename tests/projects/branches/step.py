"""python step.py OUT [IN...]: OUT holds its name, the params file and its inputs."""

import sys

out, inputs = sys.argv[1], sys.argv[2:]
parts = [out, open("params.yaml").read()]
parts += [open(path).read() for path in inputs]
with open(out, "w") as target:
    target.write("\n".join(parts))
