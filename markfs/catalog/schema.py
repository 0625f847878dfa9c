"""The catalog schema, as an ordered list of migrations.

Each migration runs once, in one transaction, and bumps `meta.schema_version`.
Never edit a migration that has shipped: append a new one. Every table and
column says why it exists.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: node tree, sources, hard links, xattrs, meta
    """
    -- Facts about this catalog as a whole, one integer each.
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,  -- 'schema_version' | 'stamp' | 'generation'
        value INTEGER NOT NULL   -- stamp: bumped by every write transaction and copied into
                                 -- the LMDB mirror, so a crash between the two writes shows
                                 -- as a mismatch; generation: random per catalog, seeds the
                                 -- generation of every node (NFS handles of a re-created
                                 -- catalog must not match old ones)
    );

    -- One row per configured source (a storage whose tree appears under /sources/NAME).
    CREATE TABLE sources (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused
        name       TEXT NOT NULL UNIQUE,               -- folder name under /sources
        url        TEXT NOT NULL,                      -- as given, minus any secret
        scheme     TEXT NOT NULL,                      -- 'file' | later 's3', 'sftp', SQL schemes
        read_only  INTEGER NOT NULL DEFAULT 0,         -- 1: writes through the mount get EROFS
        created_ns INTEGER NOT NULL                    -- when `source add` ran
    );

    -- The node tree: every inode the mount shows. A node's id is its inode number.
    CREATE TABLE nodes (
        id          INTEGER PRIMARY KEY AUTOINCREMENT, -- inode number; AUTOINCREMENT: never reused
        parent      INTEGER NOT NULL,   -- parent node id (the root is its own parent); no FK:
                                        -- subtrees are removed explicitly so the mirror hears of it
        name        BLOB NOT NULL,      -- one path component, bytes as the kernel sends them
        kind        TEXT NOT NULL CHECK (kind IN ('layout', 'control', 'source')),
                                        -- which provider answers for the node
        mode        INTEGER NOT NULL,   -- st_mode, file type bits included
        uid         INTEGER NOT NULL,   -- owner
        gid         INTEGER NOT NULL,   -- group
        size        INTEGER NOT NULL DEFAULT 0,  -- st_size in bytes
        mtime_ns    INTEGER NOT NULL,   -- content modification time
        ctime_ns    INTEGER NOT NULL,   -- status change time
        nlink       INTEGER NOT NULL DEFAULT 1,  -- link count as the source reports it
        generation  INTEGER NOT NULL,   -- with id, the identity in NFS file handles
        source_id   INTEGER REFERENCES sources(id),  -- owning source for kind 'source'
        remote_path BLOB,               -- path inside the source, '/'-separated, b'' = its root
        target      BLOB,               -- symlink target
        listed_ns   INTEGER,            -- last time this directory was reconciled with its source
        UNIQUE (parent, name)
    );
    CREATE INDEX nodes_by_parent_id ON nodes (parent, id);          -- readdir in stable id order
    CREATE INDEX nodes_by_remote ON nodes (source_id, remote_path); -- source path -> node

    -- Extra names of a node (hard links made through the mount). The node row holds
    -- the first name; each further name is a row here.
    CREATE TABLE hardlinks (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- readdir cookie order for these names
        parent      INTEGER NOT NULL,                   -- directory holding the extra name
        name        BLOB NOT NULL,                      -- the extra name
        node_id     INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,  -- the inode
        remote_path BLOB NOT NULL,                      -- path of this name inside the source
        UNIQUE (parent, name)
    );
    CREATE INDEX hardlinks_by_node ON hardlinks (node_id);
    CREATE INDEX hardlinks_by_remote ON hardlinks (remote_path);

    -- Extended attributes set through the mount (sources need not support them).
    CREATE TABLE xattrs (
        node_id INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,  -- owner node
        name    BLOB NOT NULL,   -- full attribute name, e.g. b'user.comment'
        value   BLOB NOT NULL,   -- raw value
        PRIMARY KEY (node_id, name)
    ) WITHOUT ROWID;
    """,
    # 2: remote sources: object identity and the upload journal
    """
    -- ETag (S3) or size+mtime token (SFTP) of the content a node's attributes describe;
    -- the content cache is keyed by it, so a changed object is never served stale.
    ALTER TABLE nodes ADD COLUMN etag BLOB;

    -- Files written through the mount whose upload to their source is not yet done.
    -- A row exists from close() until the upload succeeded; a row left by a crash
    -- is uploaded again on the next start. Nothing acknowledged is lost.
    CREATE TABLE uploads (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of arrival
        node_id      INTEGER NOT NULL,   -- the file (no FK: it may be unlinked meanwhile)
        source_id    INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
        remote_path  BLOB NOT NULL,      -- where the content goes, as of the last close
        staging      TEXT NOT NULL,      -- the staged file under DATA_DIR/staging
        size         INTEGER NOT NULL,   -- bytes staged
        queued_ns    INTEGER NOT NULL,   -- when close() journaled it
        attempts     INTEGER NOT NULL DEFAULT 0,  -- failed tries so far
        last_error   TEXT                -- one line about the last failure, no secrets
    );
    CREATE INDEX uploads_by_node ON uploads (node_id);
    """,
    # 3: crash-safe renames on stores without a rename of their own
    """
    -- A folder rename on S3 is a copy of every key, then a delete of every key. A row
    -- exists from before the first copy until after the last delete; a row left by a
    -- crash is finished at the next start (copy what is still at the old path, then
    -- delete it), so a folder is never left half at each name.
    CREATE TABLE renames (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of arrival
        source_id   INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
        old_path    BLOB NOT NULL,     -- the folder's path before the rename
        new_path    BLOB NOT NULL,     -- and after it
        started_ns  INTEGER NOT NULL   -- when the rename began
    );
    """,
    # 4: what scans found in SQL sources
    """
    -- Tables and views of SQL sources, as the last level-1 scan found them.
    CREATE TABLE sql_tables (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused
        source_id     INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
        schema_name   TEXT NOT NULL,    -- schema (SQLite: 'main')
        table_name    TEXT NOT NULL,    -- exact name, any characters
        kind          TEXT NOT NULL CHECK (kind IN ('table', 'view')),
        row_count     INTEGER,          -- rows at the last scan (NULL: unknown)
        rows_exact    INTEGER NOT NULL DEFAULT 0,  -- 1: counted, 0: the engine's estimate
        change_token  TEXT NOT NULL,    -- the source's token at the last scan; a different
                                        -- token means the table must be read again
        managed       INTEGER NOT NULL DEFAULT 0,  -- 1: shown under /tables as files
        deprecated_ns INTEGER,          -- when a scan no longer found it (kept, not dropped)
        scanned_ns    INTEGER NOT NULL, -- when a scan last saw it
        UNIQUE (source_id, schema_name, table_name)
    );

    -- Columns of those tables, replaced whenever the table's change token changes.
    CREATE TABLE sql_columns (
        table_id    INTEGER NOT NULL REFERENCES sql_tables(id) ON DELETE CASCADE,
        position    INTEGER NOT NULL,   -- 0-based order in the table
        name        TEXT NOT NULL,      -- exact column name
        type        TEXT NOT NULL,      -- declared type as the source reports it
        nullable    INTEGER NOT NULL,   -- 1: NULLs allowed
        primary_key INTEGER NOT NULL,   -- 1: part of the primary key
        comment     TEXT,               -- the source's column comment, if any
        PRIMARY KEY (table_id, position)
    ) WITHOUT ROWID;
    """,
    # 5: managed tables as files, deep-scan statistics, scan jobs, search
    """
    -- The nodes table again, with kind 'table' (files and folders under /tables). SQLite
    -- cannot change a CHECK in place: rebuild, copy, rename (the migration runs with
    -- foreign keys off, so dropping the old table cascades nowhere).
    CREATE TABLE nodes_v5 (
        id          INTEGER PRIMARY KEY AUTOINCREMENT, -- inode number; AUTOINCREMENT: never reused
        parent      INTEGER NOT NULL,   -- parent node id (the root is its own parent); no FK:
                                        -- subtrees are removed explicitly so the mirror hears of it
        name        BLOB NOT NULL,      -- one path component, bytes as the kernel sends them
        kind        TEXT NOT NULL CHECK (kind IN ('layout', 'control', 'source', 'table')),
                                        -- which provider answers for the node
        mode        INTEGER NOT NULL,   -- st_mode, file type bits included
        uid         INTEGER NOT NULL,   -- owner
        gid         INTEGER NOT NULL,   -- group
        size        INTEGER NOT NULL DEFAULT 0,  -- st_size in bytes
        mtime_ns    INTEGER NOT NULL,   -- content modification time
        ctime_ns    INTEGER NOT NULL,   -- status change time
        nlink       INTEGER NOT NULL DEFAULT 1,  -- link count as the source reports it
        generation  INTEGER NOT NULL,   -- with id, the identity in NFS file handles
        source_id   INTEGER REFERENCES sources(id),  -- owning source for kinds 'source', 'table'
        remote_path BLOB,               -- path inside the source, '/'-separated, b'' = its root
        target      BLOB,               -- symlink target
        listed_ns   INTEGER,            -- last time this directory was reconciled with its source
        etag        BLOB,               -- content identity: S3 ETag, SFTP size+mtime token, or
                                        -- for a table file the xxh3-128 of its snapshot
        UNIQUE (parent, name)
    );
    INSERT INTO nodes_v5 (id, parent, name, kind, mode, uid, gid, size, mtime_ns, ctime_ns,
                          nlink, generation, source_id, remote_path, target, listed_ns, etag)
        SELECT id, parent, name, kind, mode, uid, gid, size, mtime_ns, ctime_ns, nlink,
               generation, source_id, remote_path, target, listed_ns, etag FROM nodes;
    DROP TABLE nodes;
    ALTER TABLE nodes_v5 RENAME TO nodes;
    CREATE INDEX nodes_by_parent_id ON nodes (parent, id);          -- readdir in stable id order
    CREATE INDEX nodes_by_remote ON nodes (source_id, remote_path); -- source path -> node

    -- The files of managed tables' current snapshots (data.parquet, schema.json, ...).
    -- A snapshot never changes: a refresh renders new bytes into new nodes (new inode
    -- numbers) and swaps the names over in one transaction, so a handle open on the old
    -- inode keeps reading the old bytes and the kernel's page cache is never stale.
    CREATE TABLE table_files (
        node_id      INTEGER PRIMARY KEY,  -- the file's node (kind 'table')
        table_id     INTEGER NOT NULL REFERENCES sql_tables(id) ON DELETE CASCADE,
        file_name    TEXT NOT NULL,     -- 'data.parquet' | 'data.csv' | ... | 'preview.csv'
        digest       TEXT NOT NULL,     -- xxh3-128 (hex) of the bytes: names the snapshot blob
        size         INTEGER NOT NULL,  -- exact byte count (st_size)
        row_count    INTEGER NOT NULL,  -- rows rendered into the file
        change_token TEXT NOT NULL,     -- the table's change token when rendered: a scan that
                                        -- records another token makes the snapshot stale
        rendered_ns  INTEGER NOT NULL,  -- when the snapshot was taken
        retired_ns   INTEGER            -- NULL: current. Otherwise when a newer snapshot (or
                                        -- unmanage) replaced it: the node moved under
                                        -- /.markfs/retired and still answers for a while,
                                        -- because the kernel may hold the old name for
                                        -- entry_ttl and open it; purged after a grace time
    );
    CREATE UNIQUE INDEX table_files_current ON table_files (table_id, file_name)
        WHERE retired_ns IS NULL;       -- one current file of each name per table

    -- Level-2 (deep) scan results per column of a table or structured file.
    CREATE TABLE column_stats (
        table_id       INTEGER NOT NULL REFERENCES sql_tables(id) ON DELETE CASCADE,
        position       INTEGER NOT NULL,  -- column order, as in sql_columns
        null_count     INTEGER NOT NULL,  -- rows where the column is NULL
        distinct_count INTEGER,           -- distinct non-NULL values (NULL: not computed)
        distinct_exact INTEGER NOT NULL,  -- 1: counted exactly, 0: an estimate
        min_value      TEXT,              -- smallest value, as text (NULL: none/not comparable)
        max_value      TEXT,              -- largest value, as text
        min_length     INTEGER,           -- shortest text/blob length (NULL: not text)
        max_length     INTEGER,           -- longest text/blob length
        avg_length     REAL,              -- mean text/blob length
        PRIMARY KEY (table_id, position)
    ) WITHOUT ROWID;

    -- What the last deep scan of a table (or structured file) found as a whole.
    ALTER TABLE sql_tables ADD COLUMN stats_ns INTEGER;    -- when the deep scan ran (NULL: never)
    ALTER TABLE sql_tables ADD COLUMN stats_rows INTEGER;  -- exact row count it counted
    ALTER TABLE sql_tables ADD COLUMN sample_json TEXT;    -- a few rows as a JSON array of objects
    ALTER TABLE sql_tables ADD COLUMN size_bytes INTEGER;  -- storage incl. indexes (NULL: unknown)
    ALTER TABLE sql_tables ADD COLUMN stats_token TEXT;    -- change token the statistics are of:
                                                           -- a deep scan skips tables still at it

    -- Level-1 scan of a file source (local, S3, SFTP): objects and bytes per top-level
    -- folder ('' = files at the root), replaced at every scan of the source.
    CREATE TABLE prefix_stats (
        source_id  INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
        prefix     TEXT NOT NULL,      -- first path component, '' for files at the root
        objects    INTEGER NOT NULL,   -- files below it (all depths)
        bytes      INTEGER NOT NULL,   -- their total size
        scanned_ns INTEGER NOT NULL,   -- when the scan listed it
        PRIMARY KEY (source_id, prefix)
    ) WITHOUT ROWID;

    -- Structured files (Parquet, CSV, JSON lines, JSON) found in file sources, with what
    -- the level-2 scan learnt of them. A file whose identity (ETag, or size and mtime)
    -- is unchanged is not read again; files no longer found are marked deprecated.
    CREATE TABLE structured_files (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused
        source_id     INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
        path          TEXT NOT NULL,     -- path inside the source ('/'-separated)
        identity      TEXT NOT NULL,     -- ETag or size:mtime when the file was last seen
        size          INTEGER NOT NULL,  -- bytes
        format        TEXT NOT NULL CHECK (format IN ('parquet', 'csv', 'jsonl', 'json')),
        scanned_identity TEXT,           -- identity the schema/statistics below are of
        row_count     INTEGER,           -- rows (NULL: not scanned deeply yet)
        rows_exact    INTEGER NOT NULL DEFAULT 0,  -- 1: counted or from the Parquet footer
        schema_json   TEXT,              -- [{name, type}] as inferred or declared
        stats_json    TEXT,              -- per-column statistics, as in a table's stats.json
        error         TEXT,              -- why the file could not be read, if it could not
        seen_ns       INTEGER NOT NULL,  -- last scan that found it
        deprecated_ns INTEGER,           -- when a scan no longer found it
        UNIQUE (source_id, path)
    );

    -- Every scan and render job: what the CLI's progress bar and `markfs status` show.
    CREATE TABLE scan_jobs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of start
        kind        TEXT NOT NULL,      -- 'scan' | 'deep-scan' | 'render'
        target      TEXT NOT NULL,      -- source name, or SOURCE/SCHEMA/TABLE
        started_ns  INTEGER NOT NULL,   -- when it began
        finished_ns INTEGER,            -- when it ended (NULL: running, or its process died)
        state       TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
        done        INTEGER NOT NULL DEFAULT 0,  -- units finished (tables, objects, rows)
        total       INTEGER,            -- units expected, if known
        message     TEXT                -- one line: the outcome, or the error
    );

    -- Full-text index over names, columns and comments of sources, tables and files, for
    -- `markfs search`. Rebuilt per source after each scan and manage (a derived index).
    CREATE VIRTUAL TABLE search_index USING fts5(
        path UNINDEXED,        -- what to print: the mount path, or SOURCE/SCHEMA/TABLE
        source_id UNINDEXED,   -- owner, so one source's rows can be replaced
        kind UNINDEXED,        -- 'source' | 'table' | 'view' | 'file' | 'column'
        name,                  -- the name itself, split into words
        detail,                -- column names and types, comments
        tokenize = "unicode61 remove_diacritics 2"  -- '_' and '.' split words: order_items
    );
    """,
    # 6: several daemons per data directory; parked uploads; S3 multipart uploads in flight
    """
    -- The daemon that sends this row: "pid:start time" of its process (see
    -- runtime.owner_token). A row whose owner is gone (or NULL: written before this
    -- column existed) is adopted by the next daemon that looks.
    ALTER TABLE uploads ADD COLUMN owner TEXT;
    -- When the row was parked: its staged copy is gone, so it can never succeed. Parked
    -- rows are not retried; `markfs status` lists them and `fsck --repair` drops them.
    ALTER TABLE uploads ADD COLUMN parked_ns INTEGER;
    -- The S3 multipart upload this row has in flight (UploadId), so one that a crash
    -- cut short is aborted at the next start instead of lingering on the bucket.
    ALTER TABLE uploads ADD COLUMN multipart TEXT;
    -- What an SQL source said of itself at its last level-1 scan (SQLite: the commit
    -- identity of the database file), so the next scan of an unchanged database can
    -- keep every table's change token without reading a row. NULL: nothing to go by.
    ALTER TABLE sources ADD COLUMN scan_hint TEXT;
    -- (nodes.listed_ns was written and never read: when a folder was listed lives in
    -- the daemon's memory, as `dir_ttl` needs it)
    ALTER TABLE nodes DROP COLUMN listed_ns;
    """,
    # 7: node kinds are the code's to know: no CHECK that a new kind must rebuild
    """
    -- The nodes table a last time, without the CHECK on kind: every new kind of node
    -- (views, tags, categories, ...) meant rebuilding this table, the biggest of all.
    -- `model.Kind` is the list of kinds now, checked where rows are read.
    CREATE TABLE nodes_v7 (
        id          INTEGER PRIMARY KEY AUTOINCREMENT, -- inode number; AUTOINCREMENT: never reused
        parent      INTEGER NOT NULL,   -- parent node id (the root is its own parent); no FK:
                                        -- subtrees are removed explicitly so the mirror hears of it
        name        BLOB NOT NULL,      -- one path component, bytes as the kernel sends them
        kind        TEXT NOT NULL,      -- which provider answers for the node: a value of
                                        -- model.Kind ('layout', 'source', 'table', 'view', ...)
        mode        INTEGER NOT NULL,   -- st_mode, file type bits included
        uid         INTEGER NOT NULL,   -- owner
        gid         INTEGER NOT NULL,   -- group
        size        INTEGER NOT NULL DEFAULT 0,  -- st_size in bytes
        mtime_ns    INTEGER NOT NULL,   -- content modification time
        ctime_ns    INTEGER NOT NULL,   -- status change time
        nlink       INTEGER NOT NULL DEFAULT 1,  -- link count as the source reports it
        generation  INTEGER NOT NULL,   -- with id, the identity in NFS file handles
        source_id   INTEGER REFERENCES sources(id),  -- owning source for kinds 'source', 'table'
        remote_path BLOB,               -- kind 'source': path inside the source, '/'-separated,
                                        -- b'' = its root; kind 'view': the folder's path
                                        -- inside its view (b'' = the view's own folder)
        target      BLOB,               -- symlink target
        etag        BLOB,               -- content identity: S3 ETag, SFTP size+mtime token, or
                                        -- for a table file the xxh3-128 of its snapshot
        UNIQUE (parent, name)
    );
    INSERT INTO nodes_v7 (id, parent, name, kind, mode, uid, gid, size, mtime_ns, ctime_ns,
                          nlink, generation, source_id, remote_path, target, etag)
        SELECT id, parent, name, kind, mode, uid, gid, size, mtime_ns, ctime_ns, nlink,
               generation, source_id, remote_path, target, etag FROM nodes;
    DROP TABLE nodes;
    ALTER TABLE nodes_v7 RENAME TO nodes;
    CREATE INDEX nodes_by_parent_id ON nodes (parent, id);          -- readdir in stable id order
    CREATE INDEX nodes_by_remote ON nodes (source_id, remote_path); -- source path -> node
    """,
    # 8: views, tags and categories
    """
    -- Virtual folders under /views: files of several sources gathered by rules and pins.
    -- A member is shown as its source's own node (same inode), never as a copy.
    CREATE TABLE views (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused
        name          TEXT NOT NULL UNIQUE,   -- folder name under /views
        node_id       INTEGER NOT NULL UNIQUE,  -- the view's folder (kind 'view')
        landing_source_id INTEGER REFERENCES sources(id) ON DELETE SET NULL,
                                              -- where files created in the view go (NULL:
                                              -- creating in the view is EROFS)
        landing_path  TEXT,                   -- folder inside the landing source ('' = root)
        created_ns    INTEGER NOT NULL        -- when `view add` ran
    );

    -- The rules of a view: files of SOURCE whose path (relative to its root) matches GLOB
    -- are members; for an SQL source, managed tables whose SCHEMA/TABLE (or TABLE) matches.
    CREATE TABLE view_rules (
        view_id   INTEGER NOT NULL REFERENCES views(id) ON DELETE CASCADE,  -- owner
        position  INTEGER NOT NULL,   -- order given on the command line
        source_id INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,  -- whose files
        glob      TEXT NOT NULL,      -- '*' within a folder, '**' across folders
        PRIMARY KEY (view_id, position)
    ) WITHOUT ROWID;

    -- Members added by hand (`view pin`, and files created in a view outside its rules),
    -- shown at the view's top level. Deleting the node unpins it.
    CREATE TABLE view_pins (
        view_id  INTEGER NOT NULL REFERENCES views(id) ON DELETE CASCADE,  -- owner
        node_id  INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,  -- the member
        PRIMARY KEY (view_id, node_id)
    ) WITHOUT ROWID;

    -- Tags of files and folders (kinds 'source' and 'table'). Keyed by node, so a tag
    -- follows its file across renames made through the mount; deleting the node drops it.
    CREATE TABLE tags (
        node_id  INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,  -- the tagged node
        tag      TEXT NOT NULL,    -- one tag: no '/', ',' or NUL
        PRIMARY KEY (node_id, tag)
    ) WITHOUT ROWID;
    CREATE INDEX tags_by_tag ON tags (tag);  -- /tags/TAG lists its nodes

    -- The folder of each tag under /tags (a tag exists while some node has it).
    CREATE TABLE tag_folders (
        tag      TEXT PRIMARY KEY,                 -- the tag
        node_id  INTEGER NOT NULL UNIQUE           -- its folder (kind 'tag')
    ) WITHOUT ROWID;

    -- A second hierarchy over the same files: user-defined categories (finance/2024/audit).
    CREATE TABLE categories (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused
        parent   INTEGER REFERENCES categories(id) ON DELETE CASCADE,  -- NULL: top level
        name     TEXT NOT NULL,                      -- one path component
        node_id  INTEGER NOT NULL UNIQUE,            -- its folder under /categories
        UNIQUE (parent, name)
    );

    -- Files (and folders) assigned to a category; shown in its folder.
    CREATE TABLE category_members (
        category_id INTEGER NOT NULL REFERENCES categories(id) ON DELETE CASCADE,  -- where
        node_id     INTEGER NOT NULL REFERENCES nodes(id) ON DELETE CASCADE,       -- what
        PRIMARY KEY (category_id, node_id)
    ) WITHOUT ROWID;
    """,
    # 9: uploads in pieces (S3 multipart, SFTP temporary files), streamed while writing
    """
    -- Uploads in pieces begun on a source and neither finished nor aborted yet: an S3
    -- multipart upload, or an SFTP temporary file that becomes the file when renamed.
    -- A row exists from before the first piece is sent until the server confirmed the
    -- finish or the abort; rows of a daemon that is gone are aborted by the next one, so
    -- no half-sent upload outlives markfs's knowledge of it. (Replaces uploads.multipart:
    -- pieces are also sent while a file is still being written, before any journal row.)
    CREATE TABLE piece_uploads (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of arrival
        source_id    INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
        remote_path  BLOB NOT NULL,   -- the file the pieces are for, as of the first piece
        token        TEXT NOT NULL,   -- the backend's handle: S3 UploadId, SFTP temp path
        owner        TEXT NOT NULL,   -- the daemon sending it (runtime.owner_token)
        started_ns   INTEGER NOT NULL -- when it was begun
    );
    INSERT INTO piece_uploads (source_id, remote_path, token, owner, started_ns)
        SELECT source_id, remote_path, multipart, coalesce(owner, ''), queued_ns
        FROM uploads WHERE multipart IS NOT NULL;
    ALTER TABLE uploads DROP COLUMN multipart;
    """,
    # 10: whole-file content hashes, for `markfs dupes`
    """
    -- The xxh3-128 digest of a source file's whole content, recorded when markfs read all
    -- of it; valid only while the file still has the content identity it had then (a
    -- listing that shows another identity means the digest is of older bytes).
    CREATE TABLE content_hashes (
        source_id    INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
        remote_path  BLOB NOT NULL,     -- the file's path in its source
        identity     BLOB NOT NULL,     -- its content identity when hashed: S3 ETag, SFTP
                                        -- size+mtime token, local size-mtime_ns
        size         INTEGER NOT NULL,  -- bytes hashed
        digest       TEXT NOT NULL,     -- xxh3-128 of those bytes, hex
        PRIMARY KEY (source_id, remote_path)
    );
    CREATE INDEX content_hashes_by_digest ON content_hashes (digest, size); -- equal files
    """,
    # 11: a node's own access time and device number
    """
    ALTER TABLE nodes ADD COLUMN atime_ns INTEGER;  -- last access as the source keeps it;
                                    -- NULL where it keeps none (S3): shown as mtime_ns
    ALTER TABLE nodes ADD COLUMN rdev INTEGER NOT NULL DEFAULT 0;  -- st_rdev of a device node
    -- the hot cache's packed nodes carry both now: a new stamp makes the next open rebuild it
    UPDATE meta SET value = value + 1 WHERE key = 'stamp';
    """,
    # 12: who may read a database source's table files; no password in any stored URL
    """
    -- Owner, group and permission bits of the table files (and their folders) of a
    -- PostgreSQL/MySQL source: the database has no file whose access they could copy.
    -- NULL: the mount's --uid/--gid and 0440. (A SQLite source's files take the database
    -- file's own owner, group and read bits instead.)
    ALTER TABLE sources ADD COLUMN files_uid INTEGER;
    ALTER TABLE sources ADD COLUMN files_gid INTEGER;
    ALTER TABLE sources ADD COLUMN files_mode INTEGER;  -- permission bits, e.g. 0o440
    -- (and, in Python after this: catalog/sources.scrub_stored_passwords)
    """,
    # 13: modes and owners kept in S3 object metadata
    """
    -- Which of mode (1), uid (2) and gid (4) the source's own metadata gave the node (an
    -- S3 object's x-amz-meta-mode/-uid/-gid, read by a HEAD or written by markfs); the
    -- others are the mount's defaults. NULL: the source keeps no such metadata, or it
    -- was not read yet (an S3 node is then read again at its folder's next listing; its
    -- ctime_ns is the object's LastModified, which with the ETag tells that the metadata
    -- read is still the object's).
    ALTER TABLE nodes ADD COLUMN meta_kept INTEGER;
    -- the hot cache's packed nodes carry it: a new stamp makes the next open rebuild it
    UPDATE meta SET value = value + 1 WHERE key = 'stamp';
    """,
    # 14: the change log the hosts sharing one catalog follow
    """
    -- What each write transaction changed, under its stamp, for every host's caches. Only
    -- a catalog several hosts share writes it (PostgreSQL); commits happen in stamp order
    -- (the stamp row is locked from its bump to COMMIT), so a host that has applied every
    -- stamp up to S reads the rows after S and misses nothing (catalog/changelog.py).
    CREATE TABLE changes (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,  -- order of writing
        stamp   INTEGER NOT NULL,  -- the transaction's meta.stamp
        node_id INTEGER,           -- a node whose row or names changed, or that went
        gone    INTEGER NOT NULL DEFAULT 0,  -- 1: node_id was deleted
        parent  INTEGER,           -- with name: a name (directory entry) that went
        name    BLOB
    );
    CREATE INDEX changes_by_stamp ON changes (stamp);
    -- meta 'changes_trimmed': the newest stamp whose rows were deleted (a host behind it
    -- rebuilds its caches whole)

    -- The daemons of the hosts sharing this catalog. Each renews its row every few seconds;
    -- every time here is the database server's clock (µs since the epoch), never a host's,
    -- so no host's clock decides whether another is alive (catalog/sessions.py).
    CREATE TABLE sessions (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a lapsed session's
                                                       -- daemon registers a new one
        host       TEXT NOT NULL,     -- the data directory's host.id
        hostname   TEXT NOT NULL,     -- the machine's name, for people (status)
        pid        INTEGER NOT NULL,  -- the daemon's process on that machine
        owner      TEXT NOT NULL,     -- its owner token: its journal rows carry it
        mountpoint TEXT NOT NULL,     -- where it serves
        started_us INTEGER NOT NULL,  -- when it registered
        renewed_us INTEGER NOT NULL,  -- its last renewal
        ttl_us     INTEGER NOT NULL   -- lapsed when not renewed for this long
    );
    """,
]
