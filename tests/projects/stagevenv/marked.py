"""Needs a package only the project's own virtualenv has."""

import stagemarker

with open("marked.txt", "w") as out:
    out.write(stagemarker.VALUE + "\n")
