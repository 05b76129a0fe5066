from pathlib import Path

rows = "n\n" + Path("data/raw.txt").read_text()
Path("data/train.csv").write_text(rows)
Path("data/backup.csv").write_text(rows)
