from pathlib import Path

Path("report.txt").write_text("ok\n")
