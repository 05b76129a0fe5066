"""A foreach item's own metrics, written where a templated path says."""

import json
import os
import sys
from pathlib import Path

dataset = sys.argv[1]
text = Path(f"reports/{dataset}.txt").read_text()
score = int(text.split("score=")[1])
Path("reports/metrics").mkdir(parents=True, exist_ok=True)
metrics = {"score": score, "chars": len(text)}
if os.environ.get("DVFLOW_TEST_NO_CHARS"):  # tests: a metric that a rebuild loses
    del metrics["chars"]
Path(f"reports/metrics/metrics_{dataset}.json").write_text(json.dumps(metrics) + "\n")
