"""SQL sources' tables as files: the `/tables` provider, managed tables and their
snapshots, who may read them, and the level-1 scan of a database. Imported by the
namespace core, `admin` and the CLI; imports the catalog, `render`, `scan` and
`markfs.sql`."""
