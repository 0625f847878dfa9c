"""SQL sources: databases whose schemas, tables and columns the catalog records."""
