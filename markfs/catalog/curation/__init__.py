"""The catalog's views (rules and pins), tags and categories. Used by the namespace
through `Catalog`'s parts; imports `catalog.db` and `catalog.nodes`."""
