"""Needs nothing but Python: says which interpreter ran it."""

import sys

with open("marked.txt") as src, open("plain.txt", "w") as out:
    out.write(src.read().strip() + " " + sys.prefix + "\n")
