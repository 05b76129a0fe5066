"""Runs only where DVFLOW_TEST_PICKY is set; sleeps DVFLOW_TEST_SLEEP seconds first."""

import os
import sys
import time
from pathlib import Path

time.sleep(float(os.environ.get("DVFLOW_TEST_SLEEP", "0")))
if not os.environ.get("DVFLOW_TEST_PICKY"):
    sys.exit("DVFLOW_TEST_PICKY is not set")
Path("picky.txt").write_text("picky\n")
