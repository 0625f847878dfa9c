"""Scans: what sources hold, recorded in the catalog (level 1 now; level 2 later)."""
