"""What a daemon does as one host of a catalog several hosts share (PostgreSQL):
`feed` — follow the others' commits into this host's caches and announce its own;
`session` — keep this host's session alive, and stop writing when it may have lapsed."""
