"""Count to three."""

with open("count.txt", "w") as out:
    out.write("1 2 3\n")
