"""`python -m markfs`: the same entry point as the `markfs` console script."""

from markfs.cli import main

main(prog_name="markfs")
