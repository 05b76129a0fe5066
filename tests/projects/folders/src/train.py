import json
import tarfile
from pathlib import Path

import yaml

epochs = yaml.safe_load(Path("params.yaml").read_text())["train"]["epochs"]
with tarfile.open("data/images.tar.gz") as archive:
    names = sorted(archive.getnames())
Path("models").mkdir(exist_ok=True)
Path("models/model.bin").write_text(f"{epochs}:{','.join(names)}\n")
Path("metrics.json").write_text(json.dumps({"images": len(names)}))
