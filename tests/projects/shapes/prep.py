from pathlib import Path

Path("data").mkdir(exist_ok=True)
Path("data/prep.txt").write_text("prepared\n")
