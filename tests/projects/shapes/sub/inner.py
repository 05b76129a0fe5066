from pathlib import Path

Path("inner.txt").write_text("inner\n")
Path("im.yaml").write_text("t: 8\n")
