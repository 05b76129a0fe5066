"""Fails when params.yaml says flaky.fail: true (a branch independent of a -> b -> c)."""

import sys

if "fail: true" in open("params.yaml").read():
    sys.exit("flaky: told to fail")
with open("flaky.txt", "w") as out:
    out.write("flaky ok\n")
