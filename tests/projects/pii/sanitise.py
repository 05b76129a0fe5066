from pathlib import Path

rows = [r.split(",") for r in Path("data/raw.csv").read_text().splitlines()[1:]]
Path("data/clean.csv").write_text("score\n" + "".join(f"{r[2]}\n" for r in rows))
