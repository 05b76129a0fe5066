from pathlib import Path

import yaml

factor = yaml.safe_load(Path("params.yaml").read_text())["prepare"]["factor"]
numbers = [int(x) for x in Path("data/raw.txt").read_text().split()]
out = Path("data/clean")
out.mkdir(parents=True, exist_ok=True)
(out / "scaled.txt").write_text("\n".join(str(n * factor) for n in numbers) + "\n")
(out / "count.txt").write_text(f"{len(numbers)}\n")
