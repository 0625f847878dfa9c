"""A catalog file that is not the live one — the copy a backup holds — opened on its own:
what a backup needs to know of it, and what a restore changes in it (the staged copies
pending uploads name, the snapshot blobs table files name)."""

from __future__ import annotations

from pathlib import Path

import apsw

from markfs.catalog.schema import MIGRATIONS
from markfs.catalog.tables import managed


class CatalogCopy:
    def __init__(self, path: Path, read_only: bool = False) -> None:
        flags = apsw.SQLITE_OPEN_READONLY if read_only else (
            apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE)
        self.conn = apsw.Connection(str(path), flags=flags)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> CatalogCopy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int | None:
        """The copy's schema version, or None if it is no markfs catalog."""
        has_meta = self.conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                     "AND name = 'meta'").fetchone()
        if not has_meta:
            return None
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'"
                                ).fetchone()
        return int(row[0]) if row else None

    def known_schema(self) -> bool:
        """A version this markfs can open (older ones are migrated on open)."""
        version = self.schema_version()
        return version is not None and 1 <= version <= len(MIGRATIONS)

    def problems(self) -> list[str]:
        """What SQLite's quick check finds (pages and records)."""
        rows = [str(r[0]) for r in self.conn.execute("PRAGMA quick_check")]
        return [] if rows == ["ok"] else rows


    def staged_uploads(self) -> list[tuple[int, str]]:
        """(row id, staged file) of every upload journal row, parked ones included."""
        return [(int(i), str(p)) for i, p in self.conn.execute("SELECT id, staging FROM uploads")]

    def forget_uploads(self, ids: list[int]) -> None:
        """Rows whose staged copy was gone when the backup went to copy it: that upload
        ended between the catalog copy and the file copy."""
        with self.conn:
            for row_id in ids:
                self.conn.execute("DELETE FROM uploads WHERE id = ?", (row_id,))

    def move_staging(self, staging_dir: Path) -> None:
        """Point every upload row at its staged copy's name under another staging folder
        (a backup restored into another data directory)."""
        with self.conn:
            for row_id, path in self.staged_uploads():
                self.conn.execute("UPDATE uploads SET staging = ? WHERE id = ?",
                                  (str(staging_dir / Path(path).name), row_id))

    def snapshot_digests(self) -> set[str]:
        """The snapshot blobs that table files (current or retired) name."""
        return managed.referenced_digests(self.conn)


def why_unusable(path: Path) -> str | None:
    """Why the catalog file at `path` cannot be restored, or None if it can."""
    try:
        with CatalogCopy(path, read_only=True) as copy:
            if not copy.known_schema():
                return "holds no markfs catalog this version can open"
            problems = copy.problems()
    except apsw.Error as exc:
        return f"its catalog is damaged ({str(exc).splitlines()[0]})"
    return f"its catalog is damaged ({problems[0]})" if problems else None
