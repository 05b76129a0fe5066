from pathlib import Path

rows = Path("data/raw.csv").read_text().splitlines()[1:]
out = Path("data/prepared")
out.mkdir(parents=True, exist_ok=True)
(out / "rows.csv").write_text("\n".join(rows) + "\n")
(out / "count.txt").write_text(f"{len(rows)}\n")
