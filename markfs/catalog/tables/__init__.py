"""What scans found of the sources: SQL tables and their columns, managed tables'
snapshot files and statistics, structured files of file sources, the scan and render
jobs, and the full-text search index over all of it. Used by the namespace through
`Catalog`'s parts; imports `catalog.db` and `catalog.nodes`."""
