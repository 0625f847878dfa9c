"""Resolves inodes to sources, tables, views and control files, and serves each operation."""
