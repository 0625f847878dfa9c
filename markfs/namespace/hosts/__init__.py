"""What a daemon does as one host of a catalog several hosts share (PostgreSQL):
`feed` — follow the others' commits into this host's caches and announce its own;
`session` — keep this host's session alive, and stop writing when it may have lapsed;
`following` — the node tree's part that takes the others' commits into the mirror
(`Tree` is one: catch-ups, own commits that land after COMMIT, close-to-open)."""
