"""The `content_hashes` table: whole-file xxh3-128 digests of source files, each valid
while the file keeps the content identity it had when hashed (see migration 10)."""

from __future__ import annotations

from markfs.catalog.engines import Connection
from markfs.catalog.txn import Txn


class ContentHashes:
    """Whole-file digests of source files, each under the content identity it was taken at."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def recorded(self, source_id: int, remote_path: bytes,
                 identity: bytes) -> str | None:
        """The digest of the file if it was hashed with this identity, else None."""
        for (digest,) in self._conn.execute(
                "SELECT digest FROM content_hashes WHERE source_id = ? AND remote_path = ? "
                "AND identity = ?", (source_id, remote_path, identity)):
            return str(digest)
        return None

    def record(self, txn: Txn, source_id: int, remote_path: bytes, identity: bytes, size: int,
               digest: str) -> None:
        txn.execute("INSERT INTO content_hashes (source_id, remote_path, identity, size, "
                    "digest) VALUES (?, ?, ?, ?, ?) ON CONFLICT (source_id, remote_path) "
                    "DO UPDATE SET identity = excluded.identity, size = excluded.size, "
                    "digest = excluded.digest",
                    (source_id, remote_path, identity, size, digest))
