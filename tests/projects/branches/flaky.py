"""Fails when params.yaml says flaky.fail: true (a branch independent of a -> b -> c)."""

import sys
from pathlib import Path

if "fail: true" in Path("params.yaml").read_text():
    sys.exit("flaky: told to fail")
Path("flaky.txt").write_text("flaky ok\n")
