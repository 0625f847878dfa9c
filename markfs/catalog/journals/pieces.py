"""The `piece_uploads` table: uploads in pieces begun on a source and not yet finished
or aborted (see schema migration 9)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from markfs.catalog.engines import Connection
from markfs.catalog.txn import Txn


@dataclass(frozen=True)
class PieceUpload:
    id: int
    source_id: int
    remote_path: bytes
    token: str
    owner: str


class PieceUploads:
    """Uploads in pieces begun on a source (S3 multipart uploads, SFTP temporary files)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def begun(self, txn: Txn, source_id: int, remote_path: bytes, token: str,
              owner: str) -> int:
        return txn.insert("INSERT INTO piece_uploads (source_id, remote_path, token, owner, "
                          "started_ns) VALUES (?, ?, ?, ?, ?)",
                          (source_id, remote_path, token, owner, time.time_ns()))

    def ended(self, txn: Txn, row_id: int) -> None:
        """Finished or aborted: nothing is left on the server."""
        txn.execute("DELETE FROM piece_uploads WHERE id = ?", (row_id,))

    def every_row(self) -> list[PieceUpload]:
        return [PieceUpload(int(i), int(s), bytes(p), str(t), str(o))  # type: ignore[call-overload, arg-type]
                for i, s, p, t, o in self._conn.execute(
                    "SELECT id, source_id, remote_path, token, owner FROM piece_uploads "
                    "ORDER BY id")]
