"""SQL sources: databases whose schemas, tables and columns the catalog records, read
through one interface (`base.SqlSource`). Imported by the namespace (`namespace.tables`,
`namespace.files.sources`) and the demo; imports only `markfs.errors`."""
