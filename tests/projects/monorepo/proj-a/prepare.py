"""Upper-case the raw lines."""

with open("data/raw.txt") as src, open("clean.txt", "w") as out:
    out.write(src.read().upper())
