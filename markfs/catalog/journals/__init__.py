"""The catalog's journals of work in flight: uploads waiting to reach their source,
uploads in pieces begun on a source, and renames begun on a source and not yet finished —
each row written before the work starts, so a crash leaves it to be finished or undone.
Used by the namespace through `Catalog`'s parts; imports `catalog.db`."""
