"""Stands in for a query of a live source; the answer happens not to change."""

from pathlib import Path

Path("data").mkdir(exist_ok=True)
Path("data/snapshot.csv").write_text("id,value\n1,10\n2,20\n")
