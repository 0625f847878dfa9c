"""The `sources` table: which storages are configured and how to reach them."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from markfs.catalog.engines import Connection
from markfs.catalog.txn import Txn
from markfs.schemes import scheme_of
from markfs.urlsecrets import has_password, without_password

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceRow:
    id: int
    name: str
    url: str
    scheme: str
    read_only: bool
    created_ns: int
    # owner, group, permission bits of a PostgreSQL/MySQL source's table files (None:
    # the mount's --uid/--gid and 0440)
    files_uid: int | None = None
    files_gid: int | None = None
    files_mode: int | None = None


_COLUMNS = "id, name, url, scheme, read_only, created_ns, files_uid, files_gid, files_mode"


def _row(row: tuple[Any, ...]) -> SourceRow:
    return SourceRow(row[0], row[1], row[2], row[3], bool(row[4]), *row[5:])


def list_sources(conn: Connection) -> list[SourceRow]:
    return [_row(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM sources ORDER BY name")]


def get_source(conn: Connection, name: str) -> SourceRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM sources WHERE name = ?", (name,)).fetchone()
    return None if row is None else _row(row)


def get_source_by_id(conn: Connection, source_id: int) -> SourceRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM sources WHERE id = ?", (source_id,)).fetchone()
    return None if row is None else _row(row)


@dataclass(frozen=True)
class FilesAccess:
    """Who may read a database source's table files, as `source add` was told."""

    uid: int | None = None
    gid: int | None = None
    mode: int | None = None


def insert_source(txn: Txn, name: str, url: str, scheme: str, read_only: bool,
                  files: FilesAccess = FilesAccess()) -> int:
    return txn.insert(
        "INSERT INTO sources (name, url, scheme, read_only, created_ns, files_uid, files_gid, "
        "files_mode) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (name, url, scheme, int(read_only), time.time_ns(), files.uid, files.gid, files.mode))


def delete_source(txn: Txn, source_id: int) -> None:
    txn.execute("DELETE FROM sources WHERE id = ?", (source_id,))


def scrub_stored_passwords(conn: Connection) -> bool:
    """Take every password out of the stored URLs of database sources (inside the
    migration's transaction); each source whose URL held one is named in a warning
    that says where its password goes now. True if any was removed."""
    found = [(row_id, name, scheme, url) for row_id, name, scheme, url in conn.execute(
        "SELECT id, name, scheme, url FROM sources") if scheme_of(scheme).server_database
        and has_password(url)]
    for row_id, name, scheme, url in found:
        conn.execute("UPDATE sources SET url = ? WHERE id = ?", (without_password(url), row_id))
        log.warning("source %r: the password stored in its URL was removed; markfs never "
                    "stores passwords: put it in %s", name, scheme_of(scheme).credentials_go)
    return bool(found)

class Sources:
    """The sources, read on the catalog's connection (writes: this module's functions,
    inside a transaction)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def list_sources(self) -> list[SourceRow]:
        return list_sources(self._conn)

    def get_source(self, name: str) -> SourceRow | None:
        return get_source(self._conn, name)

    def get_source_by_id(self, source_id: int) -> SourceRow | None:
        return get_source_by_id(self._conn, source_id)

    def scrub_stored_passwords(self) -> bool:
        return scrub_stored_passwords(self._conn)
