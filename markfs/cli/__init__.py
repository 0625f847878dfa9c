"""The `markfs` command line, a module per command group: parses, calls the layers
below, prints — nothing else. Imports every layer; nothing imports it (`markfs.cli:main`
is the console script)."""

from markfs.cli.app import main

__all__ = ["main"]
